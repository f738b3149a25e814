# syntax=docker/dockerfile:1
# The Bulwark gateway image: built in a full Node.js 20 image, shipped on distroless nodejs20 (no shell,
# no package manager, user nonroot 65532). See docs/deploy.md. Pin both base images by digest in your
# build (--build-arg BUILD_IMAGE=node:20-bookworm@sha256:… RUNTIME_IMAGE=…@sha256:…): a tag can move.
# Both stages are Debian 12 (bookworm), so the native modules built in the first (better-sqlite3,
# onnxruntime-node, pkcs11js) find the same glibc in the second.
ARG BUILD_IMAGE=node:20-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
# `npm ci` runs the package's prepare script (the TypeScript build); then drop the dev dependencies.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM ${RUNTIME_IMAGE}
WORKDIR /app
# Files stay owned by root: the process (UID 65532) can read but not change its own code.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
USER 65532:65532
ENV NODE_ENV=production
EXPOSE 8443 9464
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["/app/bin/bulwark.js", "serve", "--config", "/etc/bulwark/config/bulwark.yaml"]
