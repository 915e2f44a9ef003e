//! The index server reflection answers from: every .proto file the node
//! serves (an encoded `FileDescriptorSet`, embedded at build time) by file
//! name, by fully qualified symbol and by extension.
//!
//! Owns the symbol naming rules of reflection: a symbol is a package-
//! qualified name without a leading dot (`storage.WriteRequest`,
//! `storage.StorageNodeService.Write`, `storage.WriteRequest.key`); enum
//! values live in the scope of their enum's parent, as in protobuf. Pure: no
//! I/O. Invariants: built once, never changed; every answer holds the file
//! asked for first and then each of its transitive dependencies exactly
//! once; an unknown name is an error, never a panic.

use bytes::Bytes;
use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use std::collections::{HashMap, HashSet};

/// Why the index could not be built, or a lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DescriptorError {
    /// The embedded set is not a valid `FileDescriptorSet`.
    Malformed(String),
    /// A file imports one the set does not hold.
    MissingDependency {
        file: String,
        dependency: String,
    },
    UnknownFile(String),
    UnknownSymbol(String),
    UnknownExtension {
        containing_type: String,
        number: i32,
    },
    /// `all_extension_numbers_of_type` for a type that is not a message.
    UnknownType(String),
}

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "the embedded descriptor set is malformed: {e}"),
            Self::MissingDependency { file, dependency } => {
                write!(
                    f,
                    "file {file:?} imports {dependency:?}, which is not served"
                )
            }
            Self::UnknownFile(name) => write!(f, "file not found: {name:?}"),
            Self::UnknownSymbol(name) => write!(f, "symbol not found: {name:?}"),
            Self::UnknownExtension {
                containing_type,
                number,
            } => write!(f, "extension {number} of {containing_type:?} not found"),
            Self::UnknownType(name) => write!(f, "message type not found: {name:?}"),
        }
    }
}

impl std::error::Error for DescriptorError {}

/// The served files, looked up by name, symbol and extension.
#[derive(Debug)]
pub(crate) struct DescriptorIndex {
    /// Each file encoded as a `FileDescriptorProto`, in set order.
    encoded: Vec<Bytes>,
    /// Indexes into `encoded` of each file's direct imports.
    imports: Vec<Vec<usize>>,
    by_name: HashMap<String, usize>,
    by_symbol: HashMap<String, usize>,
    /// Message types (their fully qualified names).
    messages: HashSet<String>,
    /// (extended message, field number) → the file declaring it.
    extensions: HashMap<(String, i32), usize>,
    /// Fully qualified service names, sorted.
    services: Vec<String>,
}

impl DescriptorIndex {
    /// Indexes an encoded `FileDescriptorSet`.
    pub(crate) fn new(encoded_set: &[u8]) -> Result<Self, DescriptorError> {
        let set = FileDescriptorSet::decode(encoded_set)
            .map_err(|e| DescriptorError::Malformed(e.to_string()))?;
        let mut index = Self {
            encoded: Vec::with_capacity(set.file.len()),
            imports: Vec::with_capacity(set.file.len()),
            by_name: HashMap::new(),
            by_symbol: HashMap::new(),
            messages: HashSet::new(),
            extensions: HashMap::new(),
            services: Vec::new(),
        };
        for (i, file) in set.file.iter().enumerate() {
            index.encoded.push(Bytes::from(file.encode_to_vec()));
            index.by_name.insert(file.name().to_string(), i);
            index.add_file_symbols(i, file);
        }
        for file in &set.file {
            let mut deps = Vec::with_capacity(file.dependency.len());
            for dep in &file.dependency {
                let at = index.by_name.get(dep).copied().ok_or_else(|| {
                    DescriptorError::MissingDependency {
                        file: file.name().to_string(),
                        dependency: dep.clone(),
                    }
                })?;
                deps.push(at);
            }
            index.imports.push(deps);
        }
        index.services.sort();
        Ok(index)
    }

    /// Every service's fully qualified name, sorted.
    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }

    /// The file named `name` and its transitive imports.
    pub(crate) fn file_by_name(&self, name: &str) -> Result<Vec<Bytes>, DescriptorError> {
        let at = self
            .by_name
            .get(name)
            .ok_or_else(|| DescriptorError::UnknownFile(name.to_string()))?;
        Ok(self.with_imports(*at))
    }

    /// The file declaring `symbol` (a leading dot is accepted) and its
    /// transitive imports.
    pub(crate) fn file_containing_symbol(
        &self,
        symbol: &str,
    ) -> Result<Vec<Bytes>, DescriptorError> {
        let name = unrooted(symbol);
        let at = self
            .by_symbol
            .get(name)
            .ok_or_else(|| DescriptorError::UnknownSymbol(symbol.to_string()))?;
        Ok(self.with_imports(*at))
    }

    /// The file declaring extension `number` of `containing_type` and its
    /// transitive imports.
    pub(crate) fn file_containing_extension(
        &self,
        containing_type: &str,
        number: i32,
    ) -> Result<Vec<Bytes>, DescriptorError> {
        let name = unrooted(containing_type);
        let at = self
            .extensions
            .get(&(name.to_string(), number))
            .ok_or_else(|| DescriptorError::UnknownExtension {
                containing_type: containing_type.to_string(),
                number,
            })?;
        Ok(self.with_imports(*at))
    }

    /// The field numbers of every known extension of message `type_name`,
    /// ascending (none for a message nobody extends).
    pub(crate) fn extension_numbers(&self, type_name: &str) -> Result<Vec<i32>, DescriptorError> {
        let name = unrooted(type_name);
        if !self.messages.contains(name) {
            return Err(DescriptorError::UnknownType(type_name.to_string()));
        }
        let mut numbers: Vec<i32> = self
            .extensions
            .keys()
            .filter(|(extendee, _)| extendee == name)
            .map(|(_, n)| *n)
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// File `at` first, then each file it imports, directly or not, once.
    fn with_imports(&self, at: usize) -> Vec<Bytes> {
        let mut seen = vec![false; self.encoded.len()];
        let mut order = vec![at];
        seen[at] = true;
        let mut next = 0;
        while let Some(&file) = order.get(next) {
            next += 1;
            for &dep in &self.imports[file] {
                if !seen[dep] {
                    seen[dep] = true;
                    order.push(dep);
                }
            }
        }
        order.into_iter().map(|i| self.encoded[i].clone()).collect()
    }

    fn add_file_symbols(&mut self, at: usize, file: &FileDescriptorProto) {
        let scope = file.package().to_string();
        for message in &file.message_type {
            self.add_message(at, &scope, message);
        }
        for en in &file.enum_type {
            self.add_enum(at, &scope, en);
        }
        for ext in &file.extension {
            self.add_extension(at, &scope, ext);
        }
        for service in &file.service {
            let name = qualify(&scope, service.name());
            for method in &service.method {
                self.by_symbol.insert(qualify(&name, method.name()), at);
            }
            self.by_symbol.insert(name.clone(), at);
            self.services.push(name);
        }
    }

    fn add_message(&mut self, at: usize, scope: &str, message: &DescriptorProto) {
        let name = qualify(scope, message.name());
        for field in &message.field {
            self.by_symbol.insert(qualify(&name, field.name()), at);
        }
        for oneof in &message.oneof_decl {
            self.by_symbol.insert(qualify(&name, oneof.name()), at);
        }
        for nested in &message.nested_type {
            self.add_message(at, &name, nested);
        }
        for en in &message.enum_type {
            self.add_enum(at, &name, en);
        }
        for ext in &message.extension {
            self.add_extension(at, &name, ext);
        }
        self.messages.insert(name.clone());
        self.by_symbol.insert(name, at);
    }

    fn add_enum(&mut self, at: usize, scope: &str, en: &EnumDescriptorProto) {
        // Enum values are siblings of their enum, as in C++ scoping.
        for value in &en.value {
            self.by_symbol.insert(qualify(scope, value.name()), at);
        }
        self.by_symbol.insert(qualify(scope, en.name()), at);
    }

    fn add_extension(&mut self, at: usize, scope: &str, ext: &prost_types::FieldDescriptorProto) {
        self.by_symbol.insert(qualify(scope, ext.name()), at);
        let extendee = ext.extendee();
        let extendee = unrooted(extendee);
        self.extensions
            .insert((extendee.to_string(), ext.number()), at);
    }
}

/// A fully qualified name without the leading dot protobuf may give it
/// (`.storage.WriteRequest` is `storage.WriteRequest`).
fn unrooted(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

/// `scope.name`, or `name` at the root scope (no package).
fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

    fn file_names(files: &[Bytes]) -> Vec<String> {
        files
            .iter()
            .map(|b| {
                FileDescriptorProto::decode(b.clone())
                    .unwrap()
                    .name()
                    .to_string()
            })
            .collect()
    }

    fn embedded() -> DescriptorIndex {
        DescriptorIndex::new(crate::proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn the_embedded_set_lists_every_served_service() {
        assert_eq!(
            embedded().services(),
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "storage.StorageAdminService",
                "storage.StorageNodeService",
                "storage.StoragePeerService",
            ]
        );
    }

    #[test]
    fn symbols_of_every_kind_find_their_file() {
        let index = embedded();
        for symbol in [
            "storage.StorageNodeService",
            ".storage.StorageNodeService",
            "storage.StorageNodeService.Write",
            "storage.WriteRequest",
            "storage.WriteRequest.key",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            "grpc.health.v1.HealthCheckResponse.SERVING",
            "grpc.reflection.v1.ServerReflectionRequest.message_request",
        ] {
            let files = index.file_containing_symbol(symbol).unwrap();
            assert!(!files.is_empty(), "{symbol}");
        }
        let files = index
            .file_containing_symbol("storage.StorageNodeService")
            .unwrap();
        assert_eq!(file_names(&files), ["storage.proto"]);
        let health = index
            .file_containing_symbol("grpc.health.v1.Health")
            .unwrap();
        assert_eq!(file_names(&health), ["grpc/health/v1/health.proto"]);
    }

    #[test]
    fn unknown_names_are_errors() {
        let index = embedded();
        assert_eq!(
            index.file_containing_symbol("storage.Nope"),
            Err(DescriptorError::UnknownSymbol("storage.Nope".into()))
        );
        assert_eq!(
            index.file_by_name("nope.proto"),
            Err(DescriptorError::UnknownFile("nope.proto".into()))
        );
        assert_eq!(
            index.file_containing_extension("storage.WriteRequest", 100),
            Err(DescriptorError::UnknownExtension {
                containing_type: "storage.WriteRequest".into(),
                number: 100
            })
        );
        assert_eq!(
            index.extension_numbers("storage.Nope"),
            Err(DescriptorError::UnknownType("storage.Nope".into()))
        );
        assert_eq!(index.extension_numbers("storage.WriteRequest"), Ok(vec![]));
        assert!(matches!(
            DescriptorIndex::new(b"\x0a\x05junk"),
            Err(DescriptorError::Malformed(_))
        ));
    }

    /// a.proto imports b.proto, which imports c.proto; a.proto also imports
    /// c.proto directly, and extends c's message.
    fn chain() -> DescriptorIndex {
        let file = |name: &str, deps: &[&str]| FileDescriptorProto {
            name: Some(name.into()),
            package: Some("p".into()),
            dependency: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        };
        let mut c = file("c.proto", &[]);
        c.message_type.push(DescriptorProto {
            name: Some("Base".into()),
            ..Default::default()
        });
        let b = file("b.proto", &["c.proto"]);
        let mut a = file("a.proto", &["b.proto", "c.proto"]);
        a.extension.push(FieldDescriptorProto {
            name: Some("extra".into()),
            number: Some(7),
            extendee: Some(".p.Base".into()),
            ..Default::default()
        });
        a.service.push(ServiceDescriptorProto {
            name: Some("Svc".into()),
            method: vec![MethodDescriptorProto {
                name: Some("Call".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let set = FileDescriptorSet {
            file: vec![c, b, a],
        };
        DescriptorIndex::new(&set.encode_to_vec()).unwrap()
    }

    #[test]
    fn answers_hold_the_file_first_then_each_import_once() {
        let index = chain();
        let files = index.file_by_name("a.proto").unwrap();
        assert_eq!(file_names(&files), ["a.proto", "b.proto", "c.proto"]);
        let files = index.file_containing_symbol("p.Svc.Call").unwrap();
        assert_eq!(file_names(&files)[0], "a.proto");
        assert_eq!(
            file_names(&index.file_by_name("c.proto").unwrap()),
            ["c.proto"]
        );
    }

    #[test]
    fn extensions_are_found_by_extendee_and_number() {
        let index = chain();
        let files = index.file_containing_extension("p.Base", 7).unwrap();
        assert_eq!(file_names(&files)[0], "a.proto");
        assert_eq!(index.extension_numbers("p.Base"), Ok(vec![7]));
        assert!(index.file_containing_symbol("p.extra").is_ok());
    }

    #[test]
    fn a_missing_import_is_refused() {
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("a.proto".into()),
                dependency: vec!["gone.proto".into()],
                ..Default::default()
            }],
        };
        assert_eq!(
            DescriptorIndex::new(&set.encode_to_vec()).unwrap_err(),
            DescriptorError::MissingDependency {
                file: "a.proto".into(),
                dependency: "gone.proto".into()
            }
        );
    }
}
