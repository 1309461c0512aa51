//! Parsing request bodies without ambiguity: an object that names a key twice is
//! refused. `serde_json::Value` keeps the last of the two silently, while our derived
//! structs refuse a repeated field, so the same body could mean two things in one
//! server: `serve` classified a `POST /v1/jobs` with `"wait"` twice as a short request
//! (its derived check failed) and then ran it as a wait (the value parser took the last
//! one), holding a slot of the short-request pool for minutes.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A request body as every reader of it in `serve` takes it: `parse_unique`, then
/// `whole_numbers` (`0.0` is the integer 0). The lane checks read the body this way too,
/// so that a body cannot be classed short and then run as a wait.
pub fn parse_request(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut value = parse_unique(bytes)?;
    super::whole_numbers(&mut value);
    Ok(value)
}

/// Parses `bytes` as JSON, refusing an object that repeats a key (at any depth).
pub fn parse_unique(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = deserializer.deserialize_any(UniqueKeys)?;
    deserializer.end()?;
    Ok(value)
}

struct UniqueKeys;

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format_args!("duplicate key {shown:?}")));
            }
            let value = map.next_value_seed(Seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// `UniqueKeys` for nested values.
struct Seed;

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_those_of_serde_json_unless_a_key_repeats() {
        let text = r#"{"a":[1,-2,3.5,"x\u0000",null,true,{"b":{}}],"c":18446744073709551615}"#;
        let expected: Value = serde_json::from_str(text).expect("serde_json");
        assert_eq!(parse_unique(text.as_bytes()).expect("unique"), expected);
        for repeated in [r#"{"wait":true,"wait":true}"#, r#"{"a":{"b":1,"b":2}}"#, r#"[{"x":1,"x":1}]"#] {
            let error = parse_unique(repeated.as_bytes()).expect_err(repeated).to_string();
            assert!(error.contains("duplicate key"), "{repeated}: {error}");
        }
        assert!(parse_unique(b"{} {}").is_err(), "trailing data");
        assert!(parse_unique(b"{\"a\":1").is_err(), "truncated");
    }
}
