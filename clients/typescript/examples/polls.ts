// The example backend's questions, typed end to end with the types scripts/gen-ts generates.
// The tests compile it and run it against a live bridge.
import { connect } from "@wsbridge/client";
import type { ConnectOptions, ProtoNames, SubscriptionEvent } from "@wsbridge/client";
// Types only: the generated module's runtime (@bufbuild/protobuf) is never loaded.
import type { QuestionJson, ReportQuestionsResponseJson } from "../src/gen/polls/v1/polls_pb.js";

/** A question as the wire has it: {id?: string, question_text?: string, published?: boolean}. */
export type Question = ProtoNames<QuestionJson>;
export type QuestionReport = ProtoNames<ReportQuestionsResponseJson>;

export interface PollsDemo {
  created: Question;
  published: Question;
  update: SubscriptionEvent<Question>;
  page: Question[];
  count: number | undefined;
  report: QuestionReport;
}

/** Creates a question, watches it being published, then lists and counts the questions. */
export async function pollsDemo(url: string, options: ConnectOptions = {}): Promise<PollsDemo> {
  const client = connect(url, options);
  try {
    const questions = client.stream<Question>("questions");

    const created = await questions.create({ question_text: "What's new?" });
    if (created.id === undefined) throw new Error("the bridge returned a question without an id");

    let updated!: (event: SubscriptionEvent<Question>) => void;
    const update = new Promise<SubscriptionEvent<Question>>((resolve) => (updated = resolve));
    const updates = questions.subscribe({ action: "update", pk: created.id }, (event) => updated(event));
    await updates.ready;

    const published = await questions.action<Question>("publish", { pk: created.id });
    const event = await update;
    await updates.unsubscribe();

    const { items: page, meta } = await questions.list({ page: 1, page_size: 10 });
    const report = await questions.action<QuestionReport>("report");
    return { created, published, update: event, page, count: meta.count, report };
  } finally {
    await client.close();
  }
}
