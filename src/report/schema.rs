//! JSON Schemas (draft 2020-12): the report's is derived from the model the
//! renderers read, the scenario format's is written by hand because its
//! shorthands (`stdout: "text"`, `in: box`) are not serde's shapes.

pub const SCENARIO_SCHEMA: &str = include_str!("../../schemas/scenario.schema.json");

pub fn report() -> serde_json::Value {
    let mut s =
        serde_json::to_value(schemars::schema_for!(super::Report)).expect("schema serializes");
    s["$id"] = "https://nslab.invalid/schemas/report.schema.json".into();
    s["title"] = "nslab report, version 1".into();
    s
}

pub fn get(what: &str) -> String {
    match what {
        "scenario" => SCENARIO_SCHEMA.trim_end().to_owned(),
        _ => serde_json::to_string_pretty(&report()).expect("schema serializes"),
    }
}
