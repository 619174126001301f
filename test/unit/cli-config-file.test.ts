// The node's config file: `key = value` lines whose keys are `node start`'s
// flags; flags win; a typo or a bad value stops the start with file:line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { ConfigFileError, applyConfigFile, parseConfigText } from '../../src/cli/config-file.js';

function startCommand(): Command {
  const port = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`invalid rest port: ${v}`);
    return n;
  };
  return new Command('start')
    .exitOverride()
    .option('--config <file>')
    .option('--addr <ip>')
    .option('--data-dir <dir>')
    .option('--rest-port <port>', 'REST', port, 9443)
    .option('--without-capability <name...>', 'caps', [])
    .option('--log-level <level>', 'log level', 'info')
    .action(() => {});
}

function withFile(text: string, fn: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-conf-'));
  const file = path.join(dir, 'tessera.conf');
  fs.writeFileSync(file, text);
  try {
    fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('config file', () => {
  it('parses key = value lines, comments, blank lines and quoted values', () => {
    const e = parseConfigText('# a comment\n\naddr = 10.0.0.1   # trailing\ndata-dir=/var/lib/tessera\nlog-level = "debug"\n', 'f');
    assert.deepEqual(
      e.map((x) => [x.key, x.value, x.line]),
      [
        ['addr', '10.0.0.1', 3],
        ['data-dir', '/var/lib/tessera', 4],
        ['log-level', 'debug', 5],
      ],
    );
  });

  it('refuses a line that is not key = value, and a key set twice, naming file and line', () => {
    assert.throws(() => parseConfigText('addr 10.0.0.1\n', 'f.conf'), ConfigFileError);
    assert.throws(() => parseConfigText('addr 10.0.0.1\n', 'f.conf'), /f\.conf:1: expected 'key = value'/);
    assert.throws(() => parseConfigText('addr = a\naddr = b\n', 'f.conf'), /f\.conf:2: 'addr' is set twice/);
  });

  it('fills what the command line left unset, with the option parsers; flags win', () => {
    withFile('addr = 10.0.0.1\ndata-dir = /d\nrest-port = 9500\nwithout-capability = a b\nlog-level = warn\n', (file) => {
      const cmd = startCommand();
      cmd.parse(['--config', file, '--log-level', 'debug'], { from: 'user' });
      applyConfigFile(cmd, file);
      assert.deepEqual(cmd.opts(), {
        config: file,
        addr: '10.0.0.1',
        dataDir: '/d',
        restPort: 9500,
        withoutCapability: ['a', 'b'],
        logLevel: 'debug',
      });
    });
  });

  it('refuses an unknown key, `config` itself, a bad value and a missing file', () => {
    withFile('adr = 10.0.0.1\n', (file) => {
      const cmd = startCommand();
      cmd.parse(['--config', file], { from: 'user' });
      assert.throws(() => applyConfigFile(cmd, file), new RegExp(`${file}:1: unknown setting 'adr'`));
    });
    withFile('config = /other\n', (file) => {
      const cmd = startCommand();
      cmd.parse([], { from: 'user' });
      assert.throws(() => applyConfigFile(cmd, file), /unknown setting 'config'/);
    });
    withFile('\nrest-port = abc\n', (file) => {
      const cmd = startCommand();
      cmd.parse([], { from: 'user' });
      assert.throws(() => applyConfigFile(cmd, file), new RegExp(`${file}:2: invalid rest port: abc`));
    });
    const cmd = startCommand();
    cmd.parse([], { from: 'user' });
    assert.throws(() => applyConfigFile(cmd, '/nonexistent/tessera.conf'), /cannot read config file \/nonexistent\/tessera\.conf: ENOENT/);
  });
});
