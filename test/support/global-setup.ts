import type {} from 'vitest';
import { Connection } from 'rabbitmq-client';
import type { TestProject } from 'vitest/node';
import { findRabbitServer, startPrivateRabbit, type PrivateRabbit } from './rabbit-node.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    rabbitmqUrl: string;
  }
}

async function reachable(url: string): Promise<boolean> {
  const conn = new Connection({ url, connectionTimeout: 2000, retryLow: 100 });
  conn.on('error', () => {});
  try {
    await conn.onConnect(3000, true);
    return true;
  } catch {
    return false;
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * Finds the broker the tests use: RABBITMQ_URL (default the local one) when it answers; else a
 * private node started here (and stopped after the run) when rabbitmq-server is installed;
 * else one clear line saying how to get one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672';
  let own: PrivateRabbit | undefined;
  if (await reachable(url)) {
    project.provide('rabbitmqUrl', url);
  } else if (findRabbitServer()) {
    own = await startPrivateRabbit();
    console.log(`No RabbitMQ at ${url}; started a private node at ${own.url} for this run.`);
    project.provide('rabbitmqUrl', own.url);
  } else {
    throw new Error(
      `No RabbitMQ reachable at ${url} and rabbitmq-server is not installed: start one (docker compose up -d rabbitmq, or apt-get install rabbitmq-server) or set RABBITMQ_URL.`,
    );
  }
  return async () => {
    await own?.destroy();
  };
}
