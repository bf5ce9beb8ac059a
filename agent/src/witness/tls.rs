//! TLS to the etcd members (`[witness.tls]`): the CA that signed their certificates,
//! and this node's client certificate when they ask for one (`--client-cert-auth`, which
//! is what keeps anyone else on the network from taking the write key).
//!
//! Loaded once per start or reload; every error names the field and the file.
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
};

use crate::config::WitnessTls;

/// What a connection to a member needs.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name the members' certificates are checked against; None: each endpoint's
    /// host (an IP address is checked against the certificate's IP SANs).
    pub server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Reads the files `t` names into a client configuration.
pub fn load(t: &WitnessTls) -> Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    let cas = certs(&t.ca, "witness.tls.ca")?;
    for c in cas {
        roots
            .add(c)
            .with_context(|| format!("witness.tls.ca: {}: not a CA certificate", t.ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("witness.tls: no TLS version in common with the crypto provider")?
        .with_root_certificates(roots);
    let config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "witness.tls.cert")?;
            crate::mysql::conn::private_file(key)
                .map_err(|e| anyhow::anyhow!("witness.tls.key: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                anyhow::anyhow!(
                    "witness.tls.key: {}: {e} (a PEM private key, readable by xvrrpd)",
                    key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).with_context(|| {
                format!(
                    "witness.tls.key: {} does not go with witness.tls.cert {}",
                    t.key
                        .as_ref()
                        .map_or(String::new(), |k| k.display().to_string()),
                    cert.display()
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!(
            "witness.tls: give cert and key together (this node's client certificate), or neither"
        ),
    };
    let server_name = t
        .server_name
        .as_deref()
        .map(|n| {
            ServerName::try_from(n.to_string()).map_err(|_| {
                anyhow::anyhow!("witness.tls.server_name: {n:?} is not a DNS name or an IP address")
            })
        })
        .transpose()?;
    Ok(Tls {
        config: Arc::new(config),
        server_name,
    })
}

/// Every certificate in the PEM file `path`; at least one.
fn certs(path: &std::path::Path, field: &str) -> Result<Vec<CertificateDer<'static>>> {
    let list = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "{field}: {}: {e} (a PEM file, readable by xvrrpd)",
                path.display()
            )
        })?;
    if list.is_empty() {
        bail!(
            "{field}: {} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(list)
}

/// The name to check endpoint `host:port`'s certificate against.
pub fn name_of(tls: &Tls, endpoint: &str) -> Result<ServerName<'static>, String> {
    if let Some(n) = &tls.server_name {
        return Ok(n.clone());
    }
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        format!("{host:?} is not a DNS name or an IP address: set witness.tls.server_name")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tls(ca: &str) -> WitnessTls {
        WitnessTls {
            ca: PathBuf::from(ca),
            cert: None,
            key: None,
            server_name: None,
        }
    }

    #[test]
    fn a_missing_or_empty_file_is_named_with_its_field() {
        let e = load(&tls("/nonexistent/ca.pem")).unwrap_err().to_string();
        assert!(e.starts_with("witness.tls.ca: /nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("xvrrpd-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load(&tls(empty.to_str().unwrap())).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_are_checked_against_their_host_unless_a_name_is_given() {
        let t = Tls {
            config: Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
            server_name: None,
        };
        assert_eq!(
            name_of(&t, "192.0.2.30:2379").unwrap(),
            ServerName::try_from("192.0.2.30").unwrap()
        );
        assert_eq!(
            name_of(&t, "[2001:db8::30]:2379").unwrap(),
            ServerName::try_from("2001:db8::30").unwrap()
        );
        assert_eq!(
            name_of(&t, "etcd1.example.net:2379").unwrap(),
            ServerName::try_from("etcd1.example.net").unwrap()
        );
        let named = Tls {
            server_name: Some(ServerName::try_from("etcd.example.net").unwrap()),
            ..t
        };
        assert_eq!(
            name_of(&named, "192.0.2.30:2379").unwrap(),
            ServerName::try_from("etcd.example.net").unwrap()
        );
    }
}
