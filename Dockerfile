# The chat server (tsx runs src/main.ts; migrations run at start).
# Build: docker build -t chat-catchup .   (or let compose.yaml build it)
FROM node:20-bookworm-slim

# better-sqlite3 is a native addon; it is compiled from source during `npm ci`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Compile better-sqlite3 here instead of downloading a prebuilt binary.
ENV npm_config_build_from_source=better-sqlite3

# Dependencies first, so editing src/ does not re-run npm ci.
# Only better-sqlite3 and esbuild have install scripts (package.json's allowScripts, which npm 11
# reads; the npm 10 in this image runs them anyway).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY tsconfig.json ./
COPY src ./src
COPY migrations ./migrations

# The SQLite file lives on a volume at /data, owned by the unprivileged `node` user.
RUN mkdir -p /data && chown node:node /data
ENV PORT=3000 \
    DATABASE_PATH=/data/chat.db
USER node

EXPOSE 3000
# What `npm start` runs, without npm in between: SIGTERM reaches the server directly.
CMD ["node", "--import", "tsx", "src/main.ts"]
