// Five-field cron expressions (minute hour day-of-month month day-of-week), as
// Redis Enterprise's job scheduler takes them (`cert_rotation_job_settings.cron_expression`).
//
//   const c = parseCron('*/5 * * * *');   // throws CronError naming the bad field
//   c.matches(new Date());                 // true on minutes 0, 5, 10, … (local time of the node)
//
// Each field is `*`, a number, a range `a-b`, any of them with a step `/n`, or
// a comma list of those. Day of week is 0-7 (0 and 7 are Sunday). As in cron,
// when both day fields are restricted a day matching either one matches.

export class CronError extends Error {}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

export interface Cron {
  readonly expression: string;
  matches(d: Date): boolean;
}

function parseField(text: string, f: (typeof FIELDS)[number]): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(part);
    if (!m) throw new CronError(`cron ${f.name} field '${text}': expected *, a number, a range a-b, a step /n, or a list of them`);
    const lo = m[1] === '*' ? f.min : Number(m[2]);
    const hi = m[1] === '*' ? f.max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? f.max : lo;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    if (lo < f.min || hi > f.max || lo > hi) throw new CronError(`cron ${f.name} field '${text}': values must be within ${f.min}-${f.max}`);
    if (step < 1) throw new CronError(`cron ${f.name} field '${text}': the step must be at least 1`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

export function parseCron(expression: string): Cron {
  const words = expression.trim().split(/\s+/);
  if (words.length !== 5)
    throw new CronError(
      `cron expression '${expression}' must have 5 fields (minute hour day-of-month month day-of-week), not ${words.length}`,
    );
  const [min, hour, dom, mon, dow] = words.map((w, i) => parseField(w, FIELDS[i]));
  if (dow.has(7)) dow.add(0);
  const domAny = words[2] === '*';
  const dowAny = words[4] === '*';
  return {
    expression,
    matches(d: Date): boolean {
      if (!min.has(d.getMinutes()) || !hour.has(d.getHours()) || !mon.has(d.getMonth() + 1)) return false;
      const domOk = dom.has(d.getDate());
      const dowOk = dow.has(d.getDay());
      if (domAny && dowAny) return true;
      if (domAny) return dowOk;
      if (dowAny) return domOk;
      return domOk || dowOk;
    },
  };
}
