# One image for every accel-lease program; the first argument picks it (ENTRYPOINT is node):
#   controller  --max-semi-space-size=8 src/controller/main.ts   (the default; see src/controller/node-flags.ts)
#   node agent  src/agent/main.ts --node NAME [--backend linux --device ... --exporter ...]
#   scan        src/agent/scan/main.ts --exporter NAME   (root, --pid host, debugfs; no cluster)
#   plugin      src/cli/main.ts status            (kubectl-dmabuf)
# Node 24 runs the TypeScript sources as they are (type stripping is on by default since 23.6;
# the code uses erasable syntax only), so there is no build step and no dev dependency inside.
#
#   docker build -t ghcr.io/accel-lease/accel-lease:0.1.0 .
#   docker run --rm ghcr.io/accel-lease/accel-lease:0.1.0 src/controller/main.ts --help

# The same Node as the tests run on (the `node` devDependency); deploy/render.ts --check compares them.
ARG NODE_VERSION=24.9.0

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, exactly as locked; none of them needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# 65532 is the conventional "nonroot" uid; the chart runs as it too (runAsNonRoot needs a number).
USER 65532:65532
# node is PID 1: the programs handle SIGTERM and SIGINT themselves (stop leading or persist
# state, then exit), so no init is needed; they spawn no children to reap.
ENTRYPOINT ["node"]
CMD ["--max-semi-space-size=8", "src/controller/main.ts"]
