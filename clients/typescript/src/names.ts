// The wire names fields as the .proto does (question_text), while the JSON types that
// protoc-gen-es generates (QuestionJson) use protobuf's JSON names (questionText).

/** "questionText" → "question_text". */
export type SnakeCase<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`}${SnakeCase<Tail>}`
  : S;

/**
 * A protoc-gen-es JSON type with the keys the wire uses: ProtoNames<QuestionJson> is
 * {id?: string; question_text?: string; published?: boolean}. Nested messages and arrays are
 * mapped too. It assumes lower_snake_case field names without an underscore before a digit
 * (protobuf's JSON name of "field_1" is "field1", which cannot be told from "field1").
 */
export type ProtoNames<T> = T extends readonly (infer E)[]
  ? ProtoNames<E>[]
  : T extends object
    ? { [K in keyof T as K extends string ? SnakeCase<K> : K]: ProtoNames<T[K]> }
    : T;
