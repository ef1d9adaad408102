import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

// Starting the server with a bad value (one line, exit 78) is in test/startup-lines.test.ts.
describe('configuration', () => {
  it('has the contract defaults', () => {
    expect(loadConfig({})).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      rabbitmqUrls: ['amqp://guest:guest@127.0.0.1:5672'],
      databasePath: './data/chat.db',
      streamName: 'chat.messages',
      logLevel: 'info',
      maxMessageBytes: 4096,
      authSecret: undefined,
      rateLimitPerMinute: 600,
      streamReplicas: undefined,
    });
  });

  it('WebSocket limits: the defaults, set by env, and a payload ceiling that follows MAX_MESSAGE_BYTES', () => {
    expect(loadConfig({})).toMatchObject({ wsFrameBurst: 200, wsFramesPerSecond: 50, wsAuthTimeoutMs: 5000, wsMaxPayloadBytes: 16 * 1024 + 4096 * 6 });
    expect(loadConfig({ MAX_MESSAGE_BYTES: '100' }).wsMaxPayloadBytes).toBe(16 * 1024 + 600);
    expect(loadConfig({ WS_FRAME_BURST: '10', WS_FRAMES_PER_SECOND: '5', WS_AUTH_TIMEOUT_MS: '250', WS_MAX_PAYLOAD_BYTES: '1000000' })).toMatchObject({
      wsFrameBurst: 10,
      wsFramesPerSecond: 5,
      wsAuthTimeoutMs: 250,
      wsMaxPayloadBytes: 1_000_000,
    });
    expect(() => loadConfig({ WS_MAX_PAYLOAD_BYTES: '40959' })).toThrow(
      new ConfigError('invalid WS_MAX_PAYLOAD_BYTES: must be at least 40960 (16384 + 6 x MAX_MESSAGE_BYTES), or a valid message could not be sent over WebSocket (got "40959")'),
    );
  });

  it('reads RABBITMQ_URL as a comma-separated list of cluster nodes, and STREAM_REPLICAS', () => {
    const c = loadConfig({ RABBITMQ_URL: 'amqp://u:p@rmq1:5672/chat, amqp://u:p@rmq2:5673/chat,amqp://u:p@rmq3/chat', STREAM_REPLICAS: '3' });
    expect(c.rabbitmqUrls).toEqual(['amqp://u:p@rmq1:5672/chat', 'amqp://u:p@rmq2:5673/chat', 'amqp://u:p@rmq3/chat']);
    expect(c.streamReplicas).toBe(3);
  });

  it.each([
    ['amqp://u:p@a:5672,http://u:p@b:5672', /^invalid RABBITMQ_URL: every URL in the list must start with amqp:\/\/ or amqps:\/\/ \(entry 2 does not\)/],
    ['amqp://u:p@a:5672,', /^invalid RABBITMQ_URL: every URL in the list must start with amqp:\/\/ or amqps:\/\/ \(entry 2 does not\)/],
    ['amqp://u:p@a:5672,amqp://u:other@b:5672', /^invalid RABBITMQ_URL: the URLs of a cluster must share scheme, user, password, vhost/],
    ['amqp://u:p@a:5672/x,amqps://u:p@b:5671/x', /^invalid RABBITMQ_URL: the URLs of a cluster must share scheme/],
  ])('refuses RABBITMQ_URL=%s with one line naming the variable', (value, message) => {
    expect(() => loadConfig({ RABBITMQ_URL: value })).toThrow(message);
  });

  it('never shows a broker password in the error', () => {
    expect(() => loadConfig({ RABBITMQ_URL: 'amqp://u:secret@a:5672,ftp://u:secret@b' })).toThrow(/\(got "amqp:\/\/u:\*\*\*@a:5672,ftp:\/\/u:\*\*\*@b"\)$/);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['RABBITMQ_URL', 'http://localhost'],
    ['STREAM_NAME', 'has space'],
    ['LOG_LEVEL', 'loud'],
    ['MAX_MESSAGE_BYTES', '0'],
    ['RATE_LIMIT_PER_MINUTE', '-5'],
    ['STREAM_REPLICAS', '0'],
    ['STREAM_REPLICAS', '2.5'],
    ['WS_FRAME_BURST', '0'],
    ['WS_FRAMES_PER_SECOND', 'fast'],
    ['WS_AUTH_TIMEOUT_MS', '99'],
    ['WS_MAX_PAYLOAD_BYTES', '1.5'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid ${name}:`));
  });
});
