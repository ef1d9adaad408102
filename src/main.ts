import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { startNode } from './node.ts';
import { VERSION } from './version.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`config error: ${err.message}\n`);
  process.exit(78);
}

const log = createLogger(config.logLevel);
log.info({ version: VERSION, node: process.version }, 'starting chat-catchup');
if (!config.authSecret) log.warn('AUTH_SECRET is not set: open mode, anyone who reaches the port can read every room and post as anyone');
else if (config.authSecret.length < 32) log.warn('AUTH_SECRET is shorter than 32 characters: tokens signed with it are easier to forge');

const node = await startNode(config, log).catch((err) => {
  if (err instanceof ConfigError) {
    // A setting to change, not a crash: one line naming it, no stack.
    process.stderr.write(`config error: ${err.message}\n`);
    process.exit(78);
  }
  log.fatal({ err }, 'failed to start');
  process.exit(1);
});

// Ctrl-C in a terminal reaches this process twice: from the terminal (the whole foreground group
// gets SIGINT) and forwarded by npm. A repeat within a second is that echo, not an impatient user.
let firstSignalAt = 0;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (firstSignalAt > 0) {
      if (Date.now() - firstSignalAt > 1000) process.exit(130); // a second signal: stop now
      return;
    }
    firstSignalAt = Date.now();
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    node.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
