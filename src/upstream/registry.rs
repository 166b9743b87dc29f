//! [`UpstreamRegistry`]: what it takes to reach each provider (its resolved addresses, its
//! TLS client, its credentials), kept apart from the route table, which is pure data.
//! The reloader installs the links for a new table before it swaps the table in, and the
//! previous table's links stay until the next install, so a request that started on the old
//! table still finds its own. Keyed as the connection pools are.

use crate::FastMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use arc_swap::ArcSwap;
use monoio_rustls::TlsConnector;

use super::conn::{h2_tls_connector, tls_connector_with_ca_file};
use super::sigv4::AwsCredentials;
use crate::config::ConfigError;
use crate::route::{CredentialRef, Provider, RouteTable, Scheme};

/// How requests to a provider are authenticated.
pub enum Credential {
    /// No credential (local providers, mocks).
    None,
    /// An API key sent in the header the provider's auth style names.
    ApiKey(ApiKey),
    /// AWS credentials for a SigV4 signature.
    Aws(AwsCredentials),
}

/// A provider API key. Its `Debug` never shows the value, so no log line can leak it.
pub struct ApiKey(String);

impl ApiKey {
    /// The key, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What it takes to reach one provider.
pub struct UpstreamLink {
    /// Resolved socket addresses; refreshed off the shards by [`UpstreamRegistry::refresh_dns`].
    pub resolved: ArcSwap<Vec<SocketAddr>>,
    /// A TLS client trusting the provider's extra CA file, when it names one.
    pub tls: Option<TlsConnector>,
    /// The TLS client of an `https` provider spoken to over HTTP/2 (ALPN `h2`, `http/1.1`;
    /// the web PKI roots plus its CA file), absent otherwise.
    pub h2_tls: Option<tokio_rustls::TlsConnector>,
    /// The credential its requests carry.
    pub credential: Credential,
    host: Option<(String, u16)>,
}

impl UpstreamLink {
    /// Builds the link for `provider`: reads its credential from the environment, loads its
    /// CA file, and resolves an IP literal at once (names wait for `refresh_dns`).
    pub fn build(provider: &Provider) -> Result<Self, ConfigError> {
        let tls = match &provider.tls_ca_file {
            Some(path) => Some(tls_connector_with_ca_file(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "provider {}: tls_ca_file {}: {e}",
                    provider.name,
                    path.display()
                ))
            })?),
            None => None,
        };
        let https = provider
            .addr
            .as_ref()
            .is_some_and(|a| a.scheme == Scheme::Https);
        let h2_tls = match provider.http2 {
            Some(_) if https => Some(h2_tls_connector(provider.tls_ca_file.as_deref()).map_err(
                |e| {
                    ConfigError::Invalid(format!(
                        "provider {}: HTTP/2 TLS client: {e}",
                        provider.name
                    ))
                },
            )?),
            _ => None,
        };
        // An unavailable provider is never called: its host is not looked up.
        let host = provider
            .addr
            .as_ref()
            .filter(|_| provider.unavailable.is_none())
            .map(|a| (a.host.clone(), a.port));
        let resolved: Vec<SocketAddr> = match &host {
            Some((h, port)) => match h.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, *port)],
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Self {
            resolved: ArcSwap::from_pointee(resolved),
            tls,
            h2_tls,
            credential: read_credential(&provider.credential),
            host,
        })
    }

    /// The API key, when the provider uses one.
    pub fn api_key(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey(k) => Some(k.expose()),
            _ => None,
        }
    }

    /// The AWS credentials, when the provider signs with SigV4.
    pub fn aws(&self) -> Option<&AwsCredentials> {
        match &self.credential {
            Credential::Aws(c) => Some(c),
            _ => None,
        }
    }

    /// Resolves the provider's host again (blocking: call it off the shards). Returns how
    /// many addresses were found; none keeps the old ones.
    pub fn refresh_addrs(&self) -> std::io::Result<usize> {
        let Some((host, port)) = &self.host else {
            return Ok(0);
        };
        let found: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
        let n = found.len();
        if n > 0 {
            self.resolved.store(Arc::new(found));
        }
        Ok(n)
    }
}

/// Reads the credential a provider refers to (unset variables leave none: the route table
/// already marked such a provider unavailable).
fn read_credential(reference: &CredentialRef) -> Credential {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    match reference {
        CredentialRef::None => Credential::None,
        CredentialRef::KeyEnv(name) => match var(name) {
            Some(v) => Credential::ApiKey(ApiKey(v.trim().to_string())),
            None => Credential::None,
        },
        CredentialRef::AwsEnv => match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Credential::Aws(AwsCredentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: secret.trim().to_string(),
                session_token: var("AWS_SESSION_TOKEN").map(|t| t.trim().to_string()),
            }),
            _ => Credential::None,
        },
    }
}

/// The links of the table being served and of the one before it.
#[derive(Default)]
struct Links {
    current: FastMap<Arc<str>, Arc<UpstreamLink>>,
    previous: FastMap<Arc<str>, Arc<UpstreamLink>>,
}

/// Every provider's link, shared by all shards and read without a lock.
#[derive(Default)]
pub struct UpstreamRegistry {
    links: ArcSwap<Links>,
}

impl UpstreamRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds and installs the links of `table`'s providers, resolving their hosts
    /// (blocking: call it off the shards, before the table is swapped in).
    pub fn install(&self, table: &RouteTable) -> Result<(), ConfigError> {
        let mut current =
            FastMap::with_capacity_and_hasher(table.providers.len(), Default::default());
        for p in table.providers.values() {
            let link = UpstreamLink::build(p)?;
            if let Err(e) = link.refresh_addrs() {
                tracing::warn!(provider = %p.name, error = %e, "cannot resolve provider host yet; will retry");
            }
            current.insert(Arc::clone(&p.pool_key), Arc::new(link));
        }
        let previous = self.links.load().current.clone();
        self.links.store(Arc::new(Links { current, previous }));
        Ok(())
    }

    /// The link for a provider's pool key.
    pub fn link(&self, pool_key: &str) -> Option<Arc<UpstreamLink>> {
        let links = self.links.load();
        links
            .current
            .get(pool_key)
            .or_else(|| links.previous.get(pool_key))
            .cloned()
    }

    /// Resolves every current provider's host again; failures keep the old addresses.
    pub fn refresh_dns(&self) {
        let links = self.links.load_full();
        for (key, link) in &links.current {
            if let Err(e) = link.refresh_addrs() {
                tracing::warn!(pool = %key, error = %e, "DNS refresh failed; keeping the old addresses");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;

    fn provider(url: &str, key_env: Option<&str>) -> Provider {
        let cfg = ProviderConfig {
            api_key_env: key_env.map(str::to_string),
            ..ProviderConfig::openai_for_tests(url)
        };
        Provider::compile("p", &cfg).unwrap()
    }

    #[test]
    fn a_link_reads_the_key_and_never_shows_it() {
        std::env::set_var("INFERGATE_TEST_LINK_KEY", "sk-link-secret");
        let link = UpstreamLink::build(&provider(
            "http://127.0.0.1:9/v1",
            Some("INFERGATE_TEST_LINK_KEY"),
        ))
        .unwrap();
        assert_eq!(link.api_key(), Some("sk-link-secret"));
        let Credential::ApiKey(key) = &link.credential else {
            panic!("expected an API key")
        };
        assert!(!format!("{key:?}").contains("sk-link-secret"));
        // An IP literal is resolved at once.
        assert_eq!(link.resolved.load().len(), 1);
    }

    #[test]
    fn the_previous_tables_links_survive_one_install() {
        let registry = UpstreamRegistry::new();
        let old = provider("http://127.0.0.1:9/v1", None);
        let mut table = RouteTable::compile(&crate::config::Config::parse("").unwrap()).unwrap();
        table.providers.insert("p".into(), Arc::new(old));
        registry.install(&table).unwrap();
        let key = "p|Http|127.0.0.1:9|/v1";
        assert!(registry.link(key).is_some());
        let empty = RouteTable::compile(&crate::config::Config::parse("").unwrap()).unwrap();
        registry.install(&empty).unwrap();
        assert!(
            registry.link(key).is_some(),
            "kept for requests on the old table"
        );
        registry.install(&empty).unwrap();
        assert!(registry.link(key).is_none());
    }
}
