//! The kernel's random numbers, as the generator every caller passes to
//! code that draws keys (latchkey-proto takes it as a parameter and never
//! reaches the OS itself).

/// The OS CSPRNG (getrandom(2)), infallible: a kernel that cannot produce
/// random numbers leaves nothing to recover to, so a failure panics.
pub fn os() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

#[cfg(test)]
mod tests {
    use rand_core::Rng;

    #[test]
    fn draws_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        super::os().fill_bytes(&mut a);
        super::os().fill_bytes(&mut b);
        assert_ne!(a, b);
    }
}
