# The chat server, as a production image.
# Build: docker build -t chat-catchup .   (or let compose.yaml build it)
#
# Two stages: `build` has the C/C++ toolchain that compiles better-sqlite3 (a native addon);
# `runtime` gets only the installed node_modules, so no compiler ships in the image.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Compile better-sqlite3 here instead of downloading a prebuilt binary.
ENV npm_config_build_from_source=better-sqlite3
# Only better-sqlite3 and esbuild have install scripts (package.json's allowScripts, which npm 11
# reads; the npm 10 in this image runs them anyway).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
# The SQLite file lives on a volume at /data, owned by the unprivileged `node` user (uid 1000).
RUN mkdir -p /data && chown node:node /data
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_PATH=/data/chat.db
USER node
EXPOSE 3000
STOPSIGNAL SIGTERM
# What `npm start` runs, without npm or a shell in between: SIGTERM reaches the server, which
# closes sockets with 1001, finishes in-flight posts and exits 0 (within SHUTDOWN_TIMEOUT_MS).
CMD ["node", "--import", "tsx", "src/main.ts"]
