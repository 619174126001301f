// In-process parts of Redis Enterprise compatibility: the custom hashing
// policy (shard_key_regex) the proxy applies, and the job scheduler's cron.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SHARD_KEY_REGEX,
  NO_RULE_SLOT,
  STANDARD_HASHING,
  crc16,
  isDefaultShardKeyRegex,
  keySlot,
  regexHashing,
  shardKeyRegexProblem,
} from '../../src/proxy/slots.js';
import { CronError, parseCron } from '../../src/util/cron.js';

const slotOfText = (s: string) => crc16(Buffer.from(s, 'latin1')) & 0x3fff;

describe('shard_key_regex', () => {
  it("RE's default rule list is the standard hashing, on the fast path", () => {
    assert.equal(isDefaultShardKeyRegex([...DEFAULT_SHARD_KEY_REGEX]), true);
    assert.equal(regexHashing([...DEFAULT_SHARD_KEY_REGEX]), STANDARD_HASHING);
    assert.equal(isDefaultShardKeyRegex(['(?<tag>.*)']), false);
  });

  it('the first matching rule, anchored at the start, gives the tag that is hashed', () => {
    // RE's documented example of a custom policy: hash the part before the first ':'.
    const h = regexHashing(['(?<tag>[^:]*):.*', '(?<tag>.*)']);
    assert.equal(h.keySlot('user:1000'), slotOfText('user'));
    assert.equal(h.keySlot('user:2000'), h.keySlot('user:1'));
    assert.equal(h.keySlot('plain'), keySlot('plain'), 'the catch-all rule hashes the whole key');
    // Braces mean nothing to this policy: the tag is what the rule says.
    assert.equal(h.keySlot('{a}:b'), slotOfText('{a}'));
    // Anchored: a rule must match at the start of the key, not somewhere in it.
    const anchored = regexHashing(['x(?<tag>.*)']);
    assert.equal(anchored.keySlot('xyz'), slotOfText('yz'));
    assert.equal(anchored.keySlot('axyz'), NO_RULE_SLOT, 'a key no rule matches gets no slot');
    // Binary keys: one character per byte, and the in-place variant agrees.
    const bin = Buffer.from([0xff, 0x3a, 0x00, 0x01]);
    assert.equal(h.keySlot(bin), crc16(Buffer.from([0xff])) & 0x3fff);
    const framed = Buffer.concat([Buffer.from('$$$'), Buffer.from('user:9'), Buffer.from('!!')]);
    assert.equal(h.keySlotOf(framed, 3, 9), h.keySlot('user:9'));
    // An empty tag puts every key it matches into one slot (RE's catch-all '.*(?<tag>)').
    assert.equal(regexHashing(['.*(?<tag>)']).keySlot('anything'), 0);
  });

  it('rule lists outside RE limits, invalid regexes and rules without a tag group are refused', () => {
    assert.equal(shardKeyRegexProblem(['(?<tag>.*)']), undefined);
    assert.match(shardKeyRegexProblem([])!, /1 to 32 rules/);
    assert.match(shardKeyRegexProblem(Array(33).fill('(?<tag>.*)'))!, /1 to 32 rules/);
    assert.match(shardKeyRegexProblem(['(?<tag>' + 'a'.repeat(260) + ')'])!, /256 characters/);
    assert.match(shardKeyRegexProblem(['(?<tag>.*'])!, /not a valid regular expression/);
    assert.match(shardKeyRegexProblem(['(.*)'])!, /no named group 'tag'/);
    assert.equal(shardKeyRegexProblem(['a|(?<tag>b)']), undefined, 'a tag in one alternative counts');
  });
});

describe('cron_expression', () => {
  const at = (iso: string) => new Date(iso);
  it('matches minutes, hours, steps, ranges and lists in local time', () => {
    const every5 = parseCron('*/5 * * * *');
    assert.equal(every5.matches(new Date(2026, 0, 1, 3, 10)), true);
    assert.equal(every5.matches(new Date(2026, 0, 1, 3, 11)), false);
    const nightly = parseCron('0 2 * * *');
    assert.equal(nightly.matches(new Date(2026, 5, 7, 2, 0)), true);
    assert.equal(nightly.matches(new Date(2026, 5, 7, 3, 0)), false);
    const weekdays = parseCron('30 8-9 * * 1-5');
    assert.equal(weekdays.matches(new Date(2026, 11, 1, 9, 30)), true, 'a Tuesday');
    assert.equal(weekdays.matches(new Date(2026, 11, 6, 9, 30)), false, 'a Sunday');
    assert.equal(parseCron('0 0 * * 7').matches(new Date(2026, 11, 6, 0, 0)), true, '7 is Sunday too');
    // Both day fields restricted: either matches, as in cron.
    const either = parseCron('0 0 1 * 2');
    assert.equal(either.matches(new Date(2026, 11, 1, 0, 0)), true);
    assert.equal(either.matches(new Date(2026, 11, 8, 0, 0)), true);
    assert.equal(either.matches(new Date(2026, 11, 9, 0, 0)), false);
    assert.equal(parseCron('0,15,45 * * 1,6 *').matches(at('2026-06-01T00:45:00')), true);
  });

  it('refuses what is not a 5-field cron expression, naming the field', () => {
    for (const [expr, re] of [
      ['* * * *', /5 fields/],
      ['60 * * * *', /minute field '60'/],
      ['* 24 * * *', /hour field/],
      ['* * 0 * *', /day of month/],
      ['* * * 13 *', /month field/],
      ['* * * * 8', /day of week/],
      ['*/0 * * * *', /step/],
      ['MON * * * *', /minute field/],
      ['5-1 * * * *', /within/],
    ] as const) {
      assert.throws(
        () => parseCron(expr),
        (e: Error) => e instanceof CronError && re.test(e.message),
        expr,
      );
    }
  });
});
