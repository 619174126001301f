// The schema primitives the record files share (schema.ts, schema-maintenance.ts).
import { type TLiteral, type TUnion, Type } from '@sinclair/typebox';

/** A union of string literals: `OneOf('a', 'b')` is the schema of `'a' | 'b'`. */
export function OneOf<const T extends readonly [string, ...string[]]>(...values: T): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(values.map((v) => Type.Literal(v))) as unknown as TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }>;
}

export const Uid = Type.Integer({ minimum: 0 });
export const Time = Type.String();
export const Role = OneOf('master', 'slave');
