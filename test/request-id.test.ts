// The worker's request ids (src/worker/request-id.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import v8 from 'node:v8';
import vm from 'node:vm';
import { nextRequestId } from '../src/worker/request-id.js';

test('ids are unique within the process and carry its random prefix', () => {
  const ids = Array.from({ length: 10_000 }, nextRequestId);
  assert.is(new Set(ids).size, ids.length);
  const prefix = ids[0]!.split('-')[0];
  for (const id of ids) assert.match(id, /^[0-9a-f]{12}-[0-9a-f]{4,}$/);
  assert.ok(ids.every((id) => id.startsWith(`${prefix}-`)));
});

// A decimal counter's digits went through V8's number-to-string cache, which young-generation
// collections treat as a root: every id's digits outlived the request by thousands of
// requests, were promoted, and brought full collections (docs/performance.md).
test('ids that nobody keeps leave nothing alive after a young-generation collection', () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (o?: { type: 'minor' | 'major'; execution: 'sync' }) => void;
  const used = () =>
    v8
      .getHeapSpaceStatistics()
      .filter((s) => s.space_name === 'new_space' || s.space_name === 'old_space')
      .reduce((n, s) => n + s.space_used_size, 0);
  gc({ type: 'major', execution: 'sync' });
  const before = used();
  let length = 0;
  for (let i = 0; i < 50_000; i++) length += nextRequestId().length;
  gc({ type: 'minor', execution: 'sync' });
  gc({ type: 'minor', execution: 'sync' });
  const kept = used() - before;
  assert.ok(length > 0);
  assert.ok(kept < 100_000, `${kept} bytes still alive after 50 000 ids were dropped`);
});

test.run();
