// Compile-time checks of the generated types as the client uses them; tsc fails on a mismatch.
import { test } from "node:test";
import type { ProtoNames } from "@wsbridge/client";
import type { ListQuestionsResponseJson, QuestionJson } from "../src/gen/polls/v1/polls_pb.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type WireQuestion = { id?: string; question_text?: string; published?: boolean };

test("ProtoNames maps protoc-gen-es JSON types to the wire's field names", () => {
  const question: Equal<ProtoNames<QuestionJson>, WireQuestion> = true;
  const list: Equal<ProtoNames<ListQuestionsResponseJson>, { questions?: WireQuestion[]; count?: number }> = true;
  // @ts-expect-error the JSON name is not what the wire has
  const camel: ProtoNames<QuestionJson> = { questionText: "x" };
  void [question, list, camel];
});
