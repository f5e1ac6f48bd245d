# One image, one target per service: `docker build --target gateway -t fitlamp/gateway .`
# Node 22 in production; the workspace runs TypeScript source through tsx (no build step).
FROM node:22-bookworm-slim AS base
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH NODE_ENV=production
RUN npm install -g pnpm@12.4.2 && mkdir -p /app && chown node:node /app
WORKDIR /app

FROM base AS deps
COPY --chown=node:node package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY --chown=node:node packages ./packages
COPY --chown=node:node services ./services
# tsx is needed at run time; the test-only packages are small enough to keep one lockfile-exact install.
RUN pnpm install --frozen-lockfile --prod=false && pnpm store prune

FROM base AS runtime
COPY --from=deps --chown=node:node /app /app
COPY --chown=node:node tsconfig.base.json tsconfig.json ./
USER node
# tsx compiles into a cache under the temp dir; mount it writable when the root fs is read-only.
ENV TSX_TSCONFIG_PATH=/app/tsconfig.json
EXPOSE 8080

FROM runtime AS gateway
CMD ["node", "--import", "tsx", "services/gateway/src/main.ts"]

FROM runtime AS scheduler
CMD ["node", "--import", "tsx", "services/scheduler/src/main.ts"]

FROM runtime AS fetcher
CMD ["node", "--import", "tsx", "services/fetcher/src/main.ts"]

FROM runtime AS lamp-writer
CMD ["node", "--import", "tsx", "services/lamp-writer/src/main.ts"]

FROM runtime AS migrate
CMD ["node", "--import", "tsx", "packages/db/src/migrate-cli.ts"]

FROM runtime AS simulators
CMD ["node", "--import", "tsx", "packages/simulators/src/cli.ts", "--host", "0.0.0.0"]
