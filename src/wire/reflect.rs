//! Reflection of the request types: what fields a `Deserialize` type reads, their JSON
//! types, which are required and whether unknown fields are refused. The OpenAPI
//! document (`serve::openapi`) is generated from this, so the served description of a
//! request body or query cannot drift from the serde type that parses it.
//!
//! A tracing `serde::Deserializer` drives the type's own `Deserialize` impl: every
//! `deserialize_*` call the impl makes says what JSON it expects, and the tracer answers
//! with a placeholder of that kind so the impl carries on to the next field. Required
//! fields are found by running the impl again with one field left out (serde fills in
//! `Option` and `#[serde(default)]` fields itself and fails on the others), and
//! `deny_unknown_fields` by running it with one field too many. Untagged enums read
//! through `deserialize_any` and so describe themselves only as `Shape::Any`: the
//! document supplies their schema from a hint.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::{StrDeserializer, U32Deserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// The JSON a field accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Bool,
    /// A non-negative integer no larger than `max`.
    Unsigned {
        max: u64,
    },
    Signed,
    Float,
    String,
    /// `Option<T>`: absent, `null` or a `T`.
    Optional(Box<Shape>),
    Array(Box<Shape>),
    /// An object with any string keys and values of one shape.
    Map(Box<Shape>),
    Struct(Struct),
    /// A unit-variant enum: one of these strings.
    Choice(&'static [&'static str]),
    /// Read with `deserialize_any` (an untagged enum): the caller needs a hint.
    Any,
}

/// A struct read from a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub fields: Vec<Field>,
    /// `deny_unknown_fields`: an unknown key is an error.
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

/// Reflects a request type, which must be a struct read from a JSON object.
///
/// Panics if `T` is not a struct or reads something the tracer cannot describe (a
/// tuple, bytes...): request types are fixed at compile time, and the unit tests of the
/// document reflect every one of them.
pub fn reflect<T: DeserializeOwned>() -> Struct {
    let name = std::any::type_name::<T>();
    // serde lists a field's aliases among its fields; feeding one beside its field is a
    // duplicate, so each run learns one alias until none is left.
    let aliases = RefCell::new(Vec::new());
    let traced = loop {
        let tracing = Tracing::new(Probe::None, &aliases);
        match tracing.run::<T>() {
            Err(e) if e.0.starts_with("duplicate field") => {
                let alias = alias_in::<T>(&tracing.fed.borrow(), &e.0, &aliases)
                    .unwrap_or_else(|| panic!("reflect {name}: {e}"));
                aliases.borrow_mut().push(alias);
            }
            other => break other.unwrap_or_else(|e| panic!("reflect {name}: {e}")),
        }
    };
    let Shape::Struct(mut root) = traced else { panic!("reflect {name}: not a struct but {traced:?}") };
    let probe = |probe| Tracing::new(probe, &aliases).run::<T>().is_err();
    mark_required(&mut root, &mut Vec::new(), &probe);
    root.closed = probe(Probe::Extra(Vec::new()));
    root
}

/// Which key of a run that failed with "duplicate field `X`" is an alias: the last key
/// fed if it is not `X`, else the earlier key that is a duplicate of `X` on its own.
fn alias_in<T: DeserializeOwned>(
    fed: &[&'static str],
    message: &str,
    aliases: &RefCell<Vec<&'static str>>,
) -> Option<&'static str> {
    let field = message.split('`').nth(1)?;
    let (&last, earlier) = fed.split_last()?;
    if last != field {
        return Some(last);
    }
    earlier.iter().copied().find(|key| {
        let pair = Tracing::new(Probe::Only(vec![key, last]), aliases);
        pair.run::<T>().is_err_and(|e| e.0.starts_with("duplicate field"))
    })
}

/// Runs the probes of every struct below `path` (`path` names the nested struct fields
/// that lead from the root to `node`); `fails` runs one probe.
fn mark_required(node: &mut Struct, path: &mut Vec<&'static str>, fails: &dyn Fn(Probe) -> bool) {
    for field in &mut node.fields {
        path.push(field.name);
        field.required = fails(Probe::Omit(path.clone()));
        if let Some(nested) = struct_in(&mut field.shape) {
            nested.closed = fails(Probe::Extra(path.clone()));
            mark_required(nested, path, fails);
        }
        path.pop();
    }
}

fn struct_in(shape: &mut Shape) -> Option<&mut Struct> {
    match shape {
        Shape::Struct(inner) => Some(inner),
        Shape::Optional(inner) => struct_in(inner),
        _ => None,
    }
}

/// What one run changes in the object it feeds the struct found at the given path of
/// field names (the empty path is the root).
#[derive(Debug, Clone, PartialEq)]
enum Probe {
    None,
    /// Leave the last field of the path out.
    Omit(Vec<&'static str>),
    /// Add a key the struct at this path does not know.
    Extra(Vec<&'static str>),
    /// Feed the root only these keys.
    Only(Vec<&'static str>),
}

/// One run of a type's `Deserialize` impl.
struct Tracing<'a> {
    probe: Probe,
    /// Field names that are aliases of others: never fed.
    aliases: &'a RefCell<Vec<&'static str>>,
    /// The keys fed, in order, the failing one last (to find an alias when the run
    /// fails on a duplicate: serde refuses the second key of a pair before its value).
    fed: RefCell<Vec<&'static str>>,
}

impl<'a> Tracing<'a> {
    fn new(probe: Probe, aliases: &'a RefCell<Vec<&'static str>>) -> Tracing<'a> {
        Tracing { probe, aliases, fed: RefCell::new(Vec::new()) }
    }

    fn run<T: DeserializeOwned>(&self) -> Result<Shape, TraceError> {
        let slot = RefCell::new(None);
        T::deserialize(Tracer { slot: &slot, path: Vec::new(), tracing: self })?;
        slot.into_inner().ok_or_else(|| TraceError("nothing was read".into()))
    }
}

#[derive(Debug)]
pub struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        TraceError(msg.to_string())
    }
}

/// Records the shape the visited type asks for in `slot`, then visits a placeholder.
struct Tracer<'a> {
    slot: &'a RefCell<Option<Shape>>,
    path: Vec<&'static str>,
    tracing: &'a Tracing<'a>,
}

impl<'a> Tracer<'a> {
    fn record(&self, shape: Shape) {
        *self.slot.borrow_mut() = Some(shape);
    }

    /// Traces a nested value (an element, a map value, a field) into its own slot.
    fn child<'de, S: DeserializeSeed<'de>>(
        &self,
        seed: S,
        path: Vec<&'static str>,
    ) -> Result<(S::Value, Shape), TraceError> {
        let slot = RefCell::new(None);
        let value = seed.deserialize(Tracer { slot: &slot, path, tracing: self.tracing })?;
        let shape = slot.into_inner().ok_or_else(|| TraceError("nothing was read".into()))?;
        Ok((value, shape))
    }

    fn unsigned<'de, V: Visitor<'de>>(self, max: u64, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Unsigned { max });
        visitor.visit_u64(0)
    }
}

macro_rules! unsupported {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, TraceError> {
            Err(TraceError(concat!("unsupported: ", stringify!($method)).into()))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    unsupported!(deserialize_char deserialize_bytes deserialize_byte_buf deserialize_unit);

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Any);
        // A string is what the untagged `CommandLine` accepts last; any hint replaces
        // the shape anyway.
        visitor.visit_str("")
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Bool);
        visitor.visit_bool(false)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.unsigned(u8::MAX.into(), visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.unsigned(u16::MAX.into(), visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.unsigned(u32::MAX.into(), visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.unsigned(u64::MAX, visitor)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Signed);
        visitor.visit_i64(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Float);
        visitor.visit_f64(0.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::String);
        visitor.visit_str("")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let slot = RefCell::new(None);
        let value = visitor.visit_some(Tracer { slot: &slot, path: self.path.clone(), tracing: self.tracing })?;
        let inner = slot.into_inner().ok_or_else(|| TraceError("nothing was read".into()))?;
        self.record(Shape::Optional(Box::new(inner)));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, _v: V) -> Result<V::Value, TraceError> {
        Err(TraceError("unsupported: unit struct".into()))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut access = OneElement { tracer: &self, element: None, done: false };
        let value = visitor.visit_seq(&mut access)?;
        let element = access.element.ok_or_else(|| TraceError("an empty sequence".into()))?;
        self.record(Shape::Array(Box::new(element)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, TraceError> {
        Err(TraceError("unsupported: tuple".into()))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, TraceError> {
        Err(TraceError("unsupported: tuple struct".into()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut access = OneEntry { tracer: &self, value: None, done: false };
        let value = visitor.visit_map(&mut access)?;
        let entry = access.value.ok_or_else(|| TraceError("an empty map".into()))?;
        self.record(Shape::Map(Box::new(entry)));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (omit, extra) = match &self.tracing.probe {
            Probe::Omit(path) if path.len() == self.path.len() + 1 && path.starts_with(&self.path) => {
                (path.last().copied(), false)
            }
            Probe::Extra(path) => (None, *path == self.path),
            _ => (None, false),
        };
        let aliases = self.tracing.aliases.borrow().clone();
        let keys = fields.iter().copied().filter(|name| Some(*name) != omit && !aliases.contains(name));
        let mut keys: Vec<&'static str> = keys.chain(extra.then_some(UNKNOWN_FIELD)).collect();
        if let (Probe::Only(only), true) = (&self.tracing.probe, self.path.is_empty()) {
            keys.clone_from(only);
        }
        let mut access = Fields { tracer: &self, keys, next: 0, shapes: Vec::new() };
        let value = visitor.visit_map(&mut access)?;
        let fields = access
            .shapes
            .into_iter()
            .map(|(name, shape)| Field { name, shape, required: false })
            .filter(|field| field.name != UNKNOWN_FIELD)
            .collect();
        self.record(Shape::Struct(Struct { fields, closed: false }));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.record(Shape::Choice(variants));
        visitor.visit_enum(U32Deserializer::<TraceError>::new(0))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.record(Shape::Any);
        visitor.visit_unit()
    }
}

/// The key of the `Probe::Extra` runs; no request type has a field of that name.
const UNKNOWN_FIELD: &str = "__reflect_unknown_field__";

/// A sequence of one traced element.
struct OneElement<'t, 'a> {
    tracer: &'t Tracer<'a>,
    element: Option<Shape>,
    done: bool,
}

impl<'de> de::SeqAccess<'de> for OneElement<'_, '_> {
    type Error = TraceError;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, TraceError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        let (value, shape) = self.tracer.child(seed, self.tracer.path.clone())?;
        self.element = Some(shape);
        Ok(Some(value))
    }
}

/// A map of one entry: a placeholder key and a traced value.
struct OneEntry<'t, 'a> {
    tracer: &'t Tracer<'a>,
    value: Option<Shape>,
    done: bool,
}

impl<'de> de::MapAccess<'de> for OneEntry<'_, '_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        seed.deserialize(StrDeserializer::<TraceError>::new("KEY")).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, TraceError> {
        let (value, shape) = self.tracer.child(seed, self.tracer.path.clone())?;
        self.value = Some(shape);
        Ok(value)
    }
}

/// A struct's object: its field names as keys, each value traced.
struct Fields<'t, 'a> {
    tracer: &'t Tracer<'a>,
    keys: Vec<&'static str>,
    next: usize,
    shapes: Vec<(&'static str, Shape)>,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        let Some(key) = self.keys.get(self.next) else { return Ok(None) };
        self.tracer.tracing.fed.borrow_mut().push(key);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, TraceError> {
        let key = self.keys[self.next];
        self.next += 1;
        let mut path = self.tracer.path.clone();
        path.push(key);
        let (value, shape) = self.tracer.child(seed, path)?;
        self.shapes.push((key, shape));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Stream {
        #[serde(rename = "stdout")]
        Out,
        #[serde(rename = "stderr")]
        Err,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        level: u8,
        #[serde(default)]
        quiet: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        command: crate::wire::CommandLine,
        cwd: Option<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        tags: Vec<String>,
        timeout_ms: Option<u64>,
        #[serde(default)]
        wait: bool,
        stream: Option<Stream>,
        offset: i64,
        inner: Option<Inner>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Open {
        #[serde(alias = "identifier")]
        id: String,
    }

    fn field(name: &'static str, shape: Shape, required: bool) -> Field {
        Field { name, shape, required }
    }

    #[test]
    fn a_struct_reflects_its_fields_types_and_requirements() {
        let opt = |shape| Shape::Optional(Box::new(shape));
        let inner = Struct {
            fields: vec![field("level", Shape::Unsigned { max: 255 }, true), field("quiet", Shape::Bool, false)],
            closed: true,
        };
        let expected = Struct {
            fields: vec![
                field("command", Shape::Any, true),
                field("cwd", opt(Shape::String), false),
                field("env", Shape::Map(Box::new(Shape::String)), false),
                field("tags", Shape::Array(Box::new(Shape::String)), true),
                field("timeout_ms", opt(Shape::Unsigned { max: u64::MAX }), false),
                field("wait", Shape::Bool, false),
                field("stream", opt(Shape::Choice(&["stdout", "stderr"])), false),
                field("offset", Shape::Signed, true),
                field("inner", opt(Shape::Struct(inner)), false),
            ],
            closed: true,
        };
        assert_eq!(reflect::<Sample>(), expected);
    }

    #[test]
    fn unknown_fields_are_allowed_unless_denied() {
        let open = reflect::<Open>();
        assert!(!open.closed);
        assert_eq!(open.fields, vec![field("id", Shape::String, true)]);
    }
}
