// The node's config file (`tessera node start --config /etc/tessera/tessera.conf`):
// one `key = value` per line, `#` starts a comment. Every key is the long name
// of a `node start` flag without its dashes (`addr`, `data-dir`, `rest-port`,
// …), so the file and `--help` never disagree; a flag given on the command
// line wins over the file. An unknown key, a line that is not `key = value`,
// or a value the flag refuses is an error naming the file and line: a typo in
// a service's config must stop the start, not be ignored.
import fs from 'node:fs';
import type { Command, Option } from 'commander';

export class ConfigFileError extends Error {}

export interface ConfigEntry {
  key: string;
  value: string;
  line: number;
}

/** The `key = value` entries of a config file's text, in order. */
export function parseConfigText(text: string, file: string): ConfigEntry[] {
  const entries: ConfigEntry[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const m = /^([a-z][a-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new ConfigFileError(`${file}:${i + 1}: expected 'key = value', got '${raw.trim()}'`);
    const [, key, rawValue] = m;
    if (seen.has(key)) throw new ConfigFileError(`${file}:${i + 1}: '${key}' is set twice`);
    seen.add(key);
    // A value may be quoted to keep a leading '#' or spaces.
    const value = /^"(.*)"$/.exec(rawValue)?.[1] ?? rawValue;
    entries.push({ key, value, line: i + 1 });
  });
  return entries;
}

function optionFor(cmd: Command, key: string): Option | undefined {
  return cmd.options.find((o) => o.long === `--${key}`);
}

/**
 * Apply a config file to a parsed command: every option the command line did
 * not set takes the file's value, parsed by the option's own parser.
 * `ignore` names options the file may not set (`config` itself).
 */
export function applyConfigFile(cmd: Command, file: string, ignore: readonly string[] = ['config']): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  for (const e of parseConfigText(text, file)) {
    const opt = optionFor(cmd, e.key);
    if (!opt || ignore.includes(e.key)) throw new ConfigFileError(`${file}:${e.line}: unknown setting '${e.key}'`);
    const attr = opt.attributeName();
    if (cmd.getOptionValueSource(attr) === 'cli') continue;
    let value: unknown;
    try {
      if (opt.variadic) value = e.value.split(/\s+/).filter(Boolean);
      else if (opt.isBoolean() && !opt.required && !opt.optional) value = /^(true|yes|on|1)$/i.test(e.value);
      else value = opt.parseArg ? opt.parseArg(e.value, undefined) : e.value;
    } catch (err) {
      throw new ConfigFileError(`${file}:${e.line}: ${(err as Error).message}`);
    }
    cmd.setOptionValueWithSource(attr, value, 'config');
  }
}
