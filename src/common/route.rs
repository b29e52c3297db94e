//! Request classification: a pure function from (method, path) to what the edge will do.
//!
//! The paths are computed once from the configuration; classifying a request compares the
//! request path against that short list and allocates nothing.

use http::Method;

use crate::config::Config;

/// The discovery documents the edge serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doc {
    /// RFC 8414 authorization server metadata, relayed from upstream.
    AuthServer,
    /// RFC 9728 protected resource metadata, built from the configuration.
    Resource,
}

/// What the edge does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET` (or `HEAD` when `head` is set) of a discovery document.
    Document { doc: Doc, head: bool },
    /// `OPTIONS` on a discovery document: a CORS preflight.
    Preflight(Doc),
    /// Any other method on a discovery document.
    MethodNotAllowed(Doc),
    /// Any other path when an upstream MCP server is configured: through the gate.
    Gate,
    /// A path the edge does not serve (no upstream is configured).
    NotFound,
}

/// The request paths that lead to each document, precomputed from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    auth_server: Vec<Box<str>>,
    resource: Vec<Box<str>>,
    /// Whether paths that are not discovery documents go through the gate.
    gated: bool,
    /// The resource's path: with several resources, requests under it go to its gate.
    prefix: Box<str>,
}

const AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";
/// RFC 9728 §3: the well-known suffix for protected resource metadata.
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl Paths {
    /// Paths for an issuer path like `/tenant` (or empty) and a resource path like `/mcp`.
    pub fn new(issuer_path: &str, resource_path: &str) -> Paths {
        let mut auth_server: Vec<Box<str>> = vec![AS_WELL_KNOWN.into(), OIDC_WELL_KNOWN.into()];
        if !issuer_path.is_empty() {
            // RFC 8414 §3.1 inserts the well-known segment before the issuer's path; OpenID
            // Connect Discovery §4 appends it. MCP clients try all three.
            auth_server.push(format!("{AS_WELL_KNOWN}{issuer_path}").into());
            auth_server.push(format!("{OIDC_WELL_KNOWN}{issuer_path}").into());
            auth_server.push(format!("{issuer_path}{OIDC_WELL_KNOWN}").into());
        }
        if !resource_path.is_empty() && resource_path != issuer_path {
            // Clients of the 2025-03-26 MCP authorization spec look for the authorization
            // server's metadata from the MCP server's URL, path inserted first (the TypeScript
            // SDK does); with several resources, this is how each finds its own.
            auth_server.push(format!("{AS_WELL_KNOWN}{resource_path}").into());
            auth_server.push(format!("{OIDC_WELL_KNOWN}{resource_path}").into());
        }
        let mut resource: Vec<Box<str>> = vec![PRM_WELL_KNOWN.into()];
        if !resource_path.is_empty() {
            // RFC 9728 §3.1: the well-known segment goes between the host and the path.
            resource.push(format!("{PRM_WELL_KNOWN}{resource_path}").into());
        }
        Paths { auth_server, resource, gated: false, prefix: resource_path.into() }
    }

    /// The same paths, with every other path sent through the gate.
    pub fn gated(self) -> Paths {
        Paths { gated: true, ..self }
    }

    pub fn from_config(config: &Config) -> Paths {
        let paths = Paths::new(&config.issuer.path, &config.resource.path);
        if config.upstream.is_some() {
            paths.gated()
        } else {
            paths
        }
    }

    /// The paths served for a document, for logs and the demo banner.
    pub fn of(&self, doc: Doc) -> &[Box<str>] {
        match doc {
            Doc::AuthServer => &self.auth_server,
            Doc::Resource => &self.resource,
        }
    }

    fn doc_for(&self, path: &str) -> Option<Doc> {
        if self.resource.iter().any(|p| **p == *path) {
            Some(Doc::Resource)
        } else if self.auth_server.iter().any(|p| **p == *path) {
            Some(Doc::AuthServer)
        } else {
            None
        }
    }

    /// How closely `path` falls under this resource's path: the length of the match, or
    /// `None` when it is not under it (`/mcp` covers `/mcp` and `/mcp/x`, not `/mcpx`).
    fn covers(&self, path: &str) -> Option<usize> {
        let rest = path.strip_prefix(&*self.prefix)?;
        (rest.is_empty() || rest.starts_with('/') || self.prefix.ends_with('/')).then_some(self.prefix.len())
    }
}

/// Classifies a request among several resources: which one (its index) and what to do.
///
/// A discovery path of any resource goes to that resource, the first listed winning where
/// paths are shared (the root documents). Any other path goes to the gate of the gated
/// resource whose path covers it most closely, and failing that to the first resource, so
/// that one resource alone gates every path.
pub fn classify_among<'a, I>(resources: I, method: &Method, path: &str) -> (usize, Route)
where
    I: IntoIterator<Item = &'a Paths>,
    I::IntoIter: Clone,
{
    let resources = resources.into_iter();
    for (i, paths) in resources.clone().enumerate() {
        if let Some(doc) = paths.doc_for(path) {
            return (i, document_route(doc, method));
        }
    }
    let mut best: Option<(usize, usize)> = None;
    for (i, paths) in resources.clone().enumerate() {
        if let (true, Some(len)) = (paths.gated, paths.covers(path)) {
            if best.is_none_or(|(_, longest)| len > longest) {
                best = Some((i, len));
            }
        }
    }
    match best {
        Some((i, _)) => (i, Route::Gate),
        None => (0, resources.clone().next().map_or(Route::NotFound, |first| classify(first, method, path))),
    }
}

/// Classifies a request by its method and path (the path without its query).
pub fn classify(paths: &Paths, method: &Method, path: &str) -> Route {
    match paths.doc_for(path) {
        Some(doc) => document_route(doc, method),
        None if paths.gated => Route::Gate,
        None => Route::NotFound,
    }
}

fn document_route(doc: Doc, method: &Method) -> Route {
    match *method {
        Method::GET => Route::Document { doc, head: false },
        Method::HEAD => Route::Document { doc, head: true },
        Method::OPTIONS => Route::Preflight(doc),
        _ => Route::MethodNotAllowed(doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_issuer_and_resource_path() {
        let p = Paths::new("", "/mcp");
        let get = |path| classify(&p, &Method::GET, path);
        assert_eq!(
            get("/.well-known/oauth-authorization-server"),
            Route::Document { doc: Doc::AuthServer, head: false }
        );
        assert_eq!(get("/.well-known/openid-configuration"), Route::Document { doc: Doc::AuthServer, head: false });
        assert_eq!(get("/.well-known/oauth-protected-resource"), Route::Document { doc: Doc::Resource, head: false });
        assert_eq!(
            get("/.well-known/oauth-protected-resource/mcp"),
            Route::Document { doc: Doc::Resource, head: false }
        );
        assert_eq!(get("/.well-known/oauth-protected-resource/other"), Route::NotFound);
        assert_eq!(get("/.well-known/oauth-authorization-server/"), Route::NotFound);
        assert_eq!(get("/mcp"), Route::NotFound);
        assert_eq!(get(""), Route::NotFound);
    }

    #[test]
    fn issuer_with_path_adds_three_forms() {
        let p = Paths::new("/tenant1", "");
        for path in [
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            assert_eq!(
                classify(&p, &Method::GET, path),
                Route::Document { doc: Doc::AuthServer, head: false },
                "{path}"
            );
        }
        assert_eq!(p.of(Doc::Resource).len(), 1);
    }

    #[test]
    fn methods() {
        let p = Paths::new("", "");
        let path = "/.well-known/oauth-protected-resource";
        assert_eq!(classify(&p, &Method::HEAD, path), Route::Document { doc: Doc::Resource, head: true });
        assert_eq!(classify(&p, &Method::OPTIONS, path), Route::Preflight(Doc::Resource));
        assert_eq!(classify(&p, &Method::POST, path), Route::MethodNotAllowed(Doc::Resource));
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(classify(&p, &custom, path), Route::MethodNotAllowed(Doc::Resource));
        assert_eq!(classify(&p, &Method::POST, "/nope"), Route::NotFound);
    }

    #[test]
    fn gated_paths_go_to_the_gate_and_documents_stay_public() {
        let p = Paths::new("", "/mcp").gated();
        assert_eq!(classify(&p, &Method::POST, "/mcp"), Route::Gate);
        assert_eq!(classify(&p, &Method::OPTIONS, "/anything"), Route::Gate);
        assert_eq!(
            classify(&p, &Method::GET, "/.well-known/oauth-protected-resource/mcp"),
            Route::Document { doc: Doc::Resource, head: false }
        );
    }

    #[test]
    fn matching_is_case_sensitive() {
        let p = Paths::new("", "");
        assert_eq!(classify(&p, &Method::GET, "/.WELL-KNOWN/oauth-protected-resource"), Route::NotFound);
    }

    #[test]
    fn several_resources_each_get_their_documents_and_their_gate() {
        let resources =
            [Paths::new("", "/a/mcp").gated(), Paths::new("/tenant", "/a/mcp/deep").gated(), Paths::new("", "/docs")];
        let among = |method: &Method, path| classify_among(&resources, method, path);
        let get = Method::GET;
        let doc = |doc| Route::Document { doc, head: false };
        // Root documents: the first resource's.
        assert_eq!(among(&get, "/.well-known/oauth-protected-resource"), (0, doc(Doc::Resource)));
        assert_eq!(among(&get, "/.well-known/oauth-authorization-server"), (0, doc(Doc::AuthServer)));
        // Path-inserted documents: each resource's own, by its path or its issuer's.
        assert_eq!(among(&get, "/.well-known/oauth-protected-resource/a/mcp/deep"), (1, doc(Doc::Resource)));
        assert_eq!(among(&get, "/.well-known/oauth-authorization-server/a/mcp/deep"), (1, doc(Doc::AuthServer)));
        assert_eq!(among(&get, "/.well-known/openid-configuration/tenant"), (1, doc(Doc::AuthServer)));
        assert_eq!(among(&get, "/.well-known/oauth-protected-resource/docs"), (2, doc(Doc::Resource)));
        // The gate: the closest covering path, on segment boundaries.
        assert_eq!(among(&Method::POST, "/a/mcp"), (0, Route::Gate));
        assert_eq!(among(&Method::POST, "/a/mcp/x"), (0, Route::Gate));
        assert_eq!(among(&Method::POST, "/a/mcp/deep"), (1, Route::Gate));
        assert_eq!(among(&Method::POST, "/a/mcp/deep/er"), (1, Route::Gate));
        assert_eq!(among(&Method::POST, "/a/mcp/deeper"), (0, Route::Gate));
        // An ungated resource's path is no gate; anything unclaimed falls to the first.
        assert_eq!(among(&Method::POST, "/docs/x"), (0, Route::Gate));
        assert_eq!(among(&Method::POST, "/elsewhere"), (0, Route::Gate));
        let ungated = [Paths::new("", "/a"), Paths::new("", "/b")];
        assert_eq!(classify_among(&ungated, &Method::POST, "/b"), (0, Route::NotFound));
    }
}
