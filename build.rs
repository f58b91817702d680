//! Generates the Kafka message codecs from the definitions in `src/protocol/schema/*.msg`; the
//! generator itself lives beside them, in `src/protocol/schema/codegen.rs`.

#[path = "src/protocol/schema/codegen.rs"]
mod codegen;

fn main() {
    codegen::main();
}
