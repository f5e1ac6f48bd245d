# One Dockerfile, one image per service: `docker build --target gateway -t fitlamp/gateway .`
#
#   workspace  the whole pnpm workspace, dev tooling included (lockfile-exact install)
#   build      `pnpm build` bundles each service with esbuild (workspace packages inlined), then
#              `--deploy` runs `pnpm deploy --prod` per image into /out/<target>: the package.json,
#              its dist/ and a production-only node_modules (exactly the third-party packages the
#              bundle imports; scripts/build.mjs checks the package.json against the bundle)
#   runtime    Node 22 and nothing else (no pnpm, no tsx); each service image copies its directory
#              from `build` and runs `node` on the bundle
#
# `test/dockerfile.test.ts` checks these rules; `test/build.int.test.ts` builds, deploys and runs them.
FROM node:22-bookworm-slim AS base
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH
RUN npm install -g pnpm@12.4.2
WORKDIR /app

FROM base AS workspace
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.json tsconfig.base.json ./
COPY scripts/build.mjs ./scripts/
COPY packages ./packages
COPY services ./services
RUN pnpm install --frozen-lockfile

FROM workspace AS build
RUN pnpm build && node scripts/build.mjs --deploy /out gateway scheduler fetcher lamp-writer migrate

FROM node:22-bookworm-slim AS runtime
# A fixed heap limit, not a quarter of the host's RAM: V8 then collects garbage close to the live
# set (tens of MiB), so the fetcher peaks under 180 MiB instead of 265 (docs/benchmarks.md, memory).
# Raise it with the memory limit by setting NODE_OPTIONS.
ENV NODE_ENV=production NODE_OPTIONS=--max-old-space-size=256
WORKDIR /app
# Files stay root's: the node user runs them and cannot change them.
USER node
EXPOSE 8080

FROM runtime AS gateway
COPY --from=build /out/gateway /app
CMD ["node", "--enable-source-maps", "dist/main.js"]

FROM runtime AS scheduler
COPY --from=build /out/scheduler /app
CMD ["node", "--enable-source-maps", "dist/main.js"]

FROM runtime AS fetcher
COPY --from=build /out/fetcher /app
CMD ["node", "--enable-source-maps", "dist/main.js"]

FROM runtime AS lamp-writer
COPY --from=build /out/lamp-writer /app
CMD ["node", "--enable-source-maps", "dist/main.js"]

# The migration Job, and (with dist/migrations.js) the init containers' wait-for-schema.
FROM runtime AS migrate
COPY --from=build /out/migrate /app
CMD ["node", "--enable-source-maps", "dist/migrate-cli.js"]

# The demo profile's Fitbit, Google Health and mindLAMP simulators: not a service, so it keeps the
# workspace's dev tooling and runs TypeScript source through tsx (its compile cache goes to /tmp).
FROM runtime AS simulators
COPY --from=workspace /app /app
# The simulated world lives in memory: no services' heap limit.
ENV TSX_TSCONFIG_PATH=/app/tsconfig.json NODE_OPTIONS=
CMD ["node", "--import", "tsx", "packages/simulators/src/cli.ts", "--host", "0.0.0.0"]
