//! A usage row's group: each dimension's name and its value, one JSON
//! object on the wire.
//!
//! A usage query can answer 100ks of rows that all share the same names:
//! the names are held once for the whole answer and each row carries only
//! its values, so building a row costs no allocation beyond its values.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    names: Arc<[String]>,
    /// One per name, in order; `None` is a null (no value, no such tag).
    values: Vec<Option<String>>,
}

impl Group {
    /// `values` in the order of `names`; as many as there are names.
    pub fn new(names: Arc<[String]>, values: Vec<Option<String>>) -> Group {
        debug_assert_eq!(names.len(), values.len());
        Group { names, values }
    }

    /// The value of dimension `name`: `None` when it is null or not a
    /// dimension of this group.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get(i)?.as_deref()
    }

    /// The values, in the order of the names.
    pub fn into_values(self) -> Vec<Option<String>> {
        self.values
    }

    /// Each dimension's name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.names
            .iter()
            .zip(&self.values)
            .map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_one_object_in_dimension_order() {
        let names: Arc<[String]> = vec!["model".to_owned(), "metadata.team".to_owned()].into();
        let g = Group::new(names, vec![Some("gpt-4o".into()), None]);
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"model":"gpt-4o","metadata.team":null}"#
        );
        assert_eq!(g.get("model"), Some("gpt-4o"));
        assert_eq!(g.get("metadata.team"), None);
        assert_eq!(g.get("provider"), None);
        assert_eq!(serde_json::to_string(&Group::default()).unwrap(), "{}");
    }
}
