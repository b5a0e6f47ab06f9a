// The arbiter's event queue (src/arbiter/signals.ts): order, waiting, and what a burst keeps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SignalQueue } from '../src/arbiter/signals.js';

test('waiters are served first come first served; queued events come out in order', async () => {
  const q = new SignalQueue();
  const first = q.next();
  const second = q.next();
  q.push({ type: 'signal', signal: 'SIGHUP' });
  q.push({ type: 'signal', signal: 'SIGTTIN' });
  assert.equal(await first, { type: 'signal', signal: 'SIGHUP' });
  assert.equal(await second, { type: 'signal', signal: 'SIGTTIN' });
  q.push({ type: 'signal', signal: 'SIGUSR1' });
  q.push({ type: 'tick' });
  assert.equal(await q.next(), { type: 'signal', signal: 'SIGUSR1' });
  assert.equal(await q.next(), { type: 'tick' });
});

test('a burst keeps one tick and at most 5 signals, as Gunicorn does', async () => {
  const q = new SignalQueue();
  for (let i = 0; i < 3; i++) q.push({ type: 'tick' });
  for (let i = 0; i < 8; i++) q.push({ type: 'signal', signal: 'SIGHUP' });
  const got: string[] = [];
  for (let i = 0; i < 6; i++) got.push((await q.next()).type);
  assert.equal(got, ['tick', 'signal', 'signal', 'signal', 'signal', 'signal']);
  const more = await Promise.race([q.next().then(() => 'event'), Promise.resolve('empty')]);
  assert.is(more, 'empty');
});

test.run();
