//! The Tang application: routes a request and answers it from the current key set.
//!
//! ```text
//! GET  /adv          precomputed bytes (signed once per key set)
//! GET  /adv/{thp}    cached per key; signed on first use on the blocking pool
//! POST /rec/{kid}    latchkey_proto::tang::exchange, on the runtime thread
//! ```

use std::sync::Arc;

use latchkey_proto::curve::EcBackend;
use latchkey_proto::jwk::Jwk;

use crate::keyset::{KeySet, Unavailable};
use crate::route::{Router, Target};
use crate::server::{Body, Handler, Response};
use crate::store::KeyStore;

const JOSE: &str = "application/jose+json";
const JWK: &str = "application/jwk+json";

pub struct Tang {
    router: Router,
    keys: Arc<KeyStore>,
    backend: Arc<dyn EcBackend>,
    /// A key no kid names: lets proto's `rec` answer an unknown kid with tang's
    /// checks and status, without a scan of the real keys.
    stand_in: Arc<Jwk>,
}

impl Tang {
    pub fn new(
        router: Router,
        keys: Arc<KeyStore>,
        backend: Arc<dyn EcBackend>,
    ) -> anyhow::Result<Tang> {
        let [_, stand_in] = crate::keydir::generate_pair();
        Ok(Tang {
            router,
            keys,
            backend,
            stand_in: Arc::new(stand_in),
        })
    }

    /// Signing an advertisement for a new key (ES512, once per key; a millisecond or
    /// two) goes to the blocking pool.
    async fn on_cpu<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        tokio::task::spawn_blocking(f).await.ok()
    }

    async fn adv(&self, keys: Arc<KeySet>, thp: Option<&str>) -> Response {
        let signed = match thp {
            None => keys.default_adv(),
            Some(thp) => match keys.cached_adv_for(thp) {
                Ok(adv) => Ok(adv),
                Err(Some(u)) => Err(u),
                Err(None) => {
                    let thp = thp.to_owned();
                    match self.on_cpu(move || keys.sign_adv_for(&thp)).await {
                        Some(r) => r,
                        None => return Response::status(500),
                    }
                }
            },
        };
        match signed {
            Ok(body) => Response {
                status: 200,
                content_type: Some(JOSE),
                body: Body::Shared(body),
            },
            Err(Unavailable::Broken) => Response::status(500),
            Err(Unavailable::NotFound) => Response::status(404),
        }
    }

    /// One P-521 multiplication, done right here on the runtime thread. It is the whole
    /// cost of the request (a quarter of a millisecond; parsing and HTTP take a few
    /// microseconds), and handing it to another thread and back cost two wake-ups and
    /// more CPU than it saved: the runtime has one thread per core and steals work, so
    /// connections on a busy thread are taken up by the others.
    fn rec(&self, keys: &KeySet, kid: &str, body: &[u8]) -> Response {
        let backend = self.backend.as_ref();
        // tang checks the request body before it looks at its keys, so even the 500
        // and 404 answers go through proto's checks first.
        let reply = if !keys.usable() {
            latchkey_proto::tang::rec(&[], kid, body, backend)
        } else if let Some(key) = keys.find(kid) {
            latchkey_proto::tang::exchange(key, body, backend)
        } else {
            latchkey_proto::tang::rec(std::slice::from_ref(&*self.stand_in), kid, body, backend)
        };
        match reply {
            Ok(reply) => Response {
                status: 200,
                content_type: Some(JWK),
                body: Body::Owned(reply),
            },
            Err(e) => Response::status(e.status()),
        }
    }
}

impl Handler for Tang {
    async fn handle(&self, method: &str, target: &str, body: Vec<u8>) -> Response {
        let Some(route) = self.router.route(target) else {
            return Response::status(404);
        };
        if method != route.method() {
            return Response::status(405);
        }
        // Reading the directory hangs (a file system that does not answer).
        let Some(keys) = self.keys.current().await else {
            return Response::status(503);
        };
        match route {
            Target::Adv => self.adv(keys, None).await,
            Target::AdvThp(thp) => self.adv(keys, Some(thp)).await,
            Target::Rec(kid) => self.rec(&keys, kid, &body),
        }
    }
}
