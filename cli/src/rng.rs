//! The operating system's random numbers, in the shape latchkey-proto takes them.

/// An infallible CSPRNG over getrandom(2); a failing kernel RNG is not recoverable.
pub fn os() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
