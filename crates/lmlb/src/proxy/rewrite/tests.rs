use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn replaced(body: &str, model: &str) -> String {
    let fields = inspect(body.as_bytes()).unwrap();
    joined(&replace_model(body.as_bytes(), &fields.model_span, model))
}

fn joined(rewritten: &Rewritten<'_>) -> String {
    String::from_utf8(rewritten.pieces().concat()).unwrap()
}

#[test]
fn plain_names_are_not_copied() {
    let body = r#"{"model":"qwen"}"#;
    let fields = inspect(body.as_bytes()).unwrap();
    for (name, copied) in [
        ("qwen:2", false),
        ("ünï", false),
        ("a\"b", true),
        ("a\nb", true),
    ] {
        let rewritten = replace_model(body.as_bytes(), &fields.model_span, name);
        assert_eq!(matches!(rewritten, Rewritten::Copy(_)), copied, "{name:?}");
        let expected = rewrite_model(body.as_bytes(), &fields.model_span, name);
        assert_eq!(joined(&rewritten).as_bytes(), &expected[..], "{name:?}");
    }
}

#[test]
fn replaces_only_model_value() {
    let body = r#"{ "messages":[{"role":"user","content":"model"}],  "model" :  "qwen" ,"x":1}"#;
    assert_eq!(
        replaced(body, "qwen:2"),
        r#"{ "messages":[{"role":"user","content":"model"}],  "model" :  "qwen:2" ,"x":1}"#
    );
}

#[test]
fn nested_model_keys_ignored() {
    let body = r#"{"metadata":{"model":"inner"},"tools":[{"model":"x"}],"model":"outer"}"#;
    let fields = inspect(body.as_bytes()).unwrap();
    assert_eq!(fields.model, "outer");
    assert_eq!(
        replaced(body, "m"),
        r#"{"metadata":{"model":"inner"},"tools":[{"model":"x"}],"model":"m"}"#
    );
}

#[test]
fn escaped_key_and_value() {
    let body = r#"{"mod\u0065l":"q\"wen","stream":true}"#;
    let fields = inspect(body.as_bytes()).unwrap();
    assert_eq!(fields.model, "q\"wen");
    assert!(fields.stream);
    assert_eq!(
        replaced(body, "a\"b"),
        r#"{"mod\u0065l":"a\"b","stream":true}"#
    );
}

#[test]
fn stream_must_be_true() {
    assert!(!inspect(br#"{"model":"m","stream":"true"}"#).unwrap().stream);
    assert!(!inspect(br#"{"model":"m"}"#).unwrap().stream);
    assert!(inspect(br#"{"model":"m","stream":true}"#).unwrap().stream);
}

#[test]
fn invalid_bodies_rejected() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "empty"),
        (b"{\"model\":", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b"\"model\"", "JSON object"),
        (b"{\"messages\":[]}", "no \"model\""),
        (b"{\"model\":42}", "must be a string"),
        (b"{\"model\":\"a\",\"model\":\"b\"}", "duplicate"),
    ];
    for (body, expected) in cases {
        let error = inspect(body).unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{:?}: {error}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(error.status(), 400);
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z\"\\\\{}\\[\\]:, \u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("(model|[a-z]{1,6})", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn spaced(text: String, pretty: bool) -> String {
    // Spaces, not newlines: the replacement also lands inside strings, where a raw newline is invalid.
    if pretty {
        text.replace(',', " ,  ").replace(':', " : ")
    } else {
        text
    }
}

proptest! {
    /// Whatever the object around it, only the `model` value changes: the bytes before and after
    /// it are identical, and the result parses to the original with `model` replaced.
    #[test]
    fn rewrite_keeps_every_other_byte(
        mut members in proptest::collection::vec(("[a-z_]{1,8}", json_value()), 0..6),
        model in "[a-zA-Z0-9.:/\"\\\\ -]{0,20}",
        replacement in "[a-zA-Z0-9.:/\"\\\\ -]{1,20}",
        position in 0usize..7,
        pretty in any::<bool>(),
    ) {
        members.retain(|(key, _)| key != "model");
        let mut object = Map::new();
        for (key, value) in members {
            object.insert(key, value);
        }
        let mut pairs: Vec<(String, Value)> = object.into_iter().collect();
        let at = position.min(pairs.len());
        pairs.insert(at, ("model".to_string(), Value::String(model.clone())));
        let text = format!(
            "{{{}}}",
            pairs.iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string(v).unwrap()))
                .collect::<Vec<_>>()
                .join(",")
        );
        let body = spaced(text, pretty);

        let parsed: Value = serde_json::from_str(&body).unwrap();
        let fields = inspect(body.as_bytes()).unwrap();
        prop_assert_eq!(Some(&*fields.model), parsed["model"].as_str());
        let out = rewrite_model(body.as_bytes(), &fields.model_span, &replacement);
        let pieces = replace_model(body.as_bytes(), &fields.model_span, &replacement).pieces().concat();
        prop_assert_eq!(&pieces[..], &out[..]);

        prop_assert_eq!(&out[..fields.model_span.start], &body.as_bytes()[..fields.model_span.start]);
        let tail = body.len() - fields.model_span.end;
        prop_assert_eq!(&out[out.len() - tail..], &body.as_bytes()[fields.model_span.end..]);

        let mut expected = parsed;
        expected["model"] = Value::String(replacement.clone());
        let actual: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(actual, expected);
    }
}
