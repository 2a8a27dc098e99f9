//! Listening sockets: `--listen ADDR:PORT` or systemd socket activation.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use tokio::net::{TcpListener, TcpSocket};

const BACKLOG: u32 = 1024;

/// Sockets passed by systemd (`LISTEN_PID`/`LISTEN_FDS`, from fd 3), if any.
pub fn from_systemd() -> Result<Vec<TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        let l = fds
            .take_tcp_listener(i)
            .with_context(|| format!("socket activation: fd {} is not a TCP listener", 3 + i))?
            .with_context(|| format!("socket activation: fd {} was already taken", 3 + i))?;
        l.set_nonblocking(true)
            .context("socket activation: setting O_NONBLOCK")?;
        out.push(TcpListener::from_std(l).context("socket activation: registering the socket")?);
    }
    Ok(out)
}

/// Binds one address. An IPv6 socket is IPv6-only, so `[::]:80` and
/// `0.0.0.0:80` can be given together.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .with_context(|| format!("creating a socket for {addr}"))?;
    if addr.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&socket, true)
            .with_context(|| format!("setting IPV6_V6ONLY on {addr}"))?;
    }
    socket
        .set_reuseaddr(true)
        .with_context(|| format!("setting SO_REUSEADDR on {addr}"))?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {addr}"))
}

pub fn all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    let activated = from_systemd()?;
    match (activated.is_empty(), addrs.is_empty()) {
        (false, true) => Ok(activated),
        (false, false) => {
            bail!("both --listen and systemd sockets (LISTEN_FDS) were given; use one")
        }
        (true, false) => addrs.iter().map(|&a| bind(a)).collect(),
        (true, true) => bail!(
            "nothing to listen on: give --listen ADDR:PORT or start under systemd socket activation"
        ),
    }
}
