"""Remote procedures of the tutorial app (discovered by rabbitbus at startup)."""

from rabbitbus import rpc

#: Larger inputs make the naive recursion of the tutorial take minutes.
MAX_N = 35
#: fib(35) keeps a CPU busy for seconds: two at a time at most, so a crowd of
#: slow calls cannot take every thread (and the CPU) of the RPC server from
#: the shop's catalog.quote, which has its own slots.
CONCURRENCY = 2


@rpc.procedure("fib", concurrency=CONCURRENCY)
def fib(n: int) -> int:
    """The tutorial's deliberately slow recursive Fibonacci."""
    if not isinstance(n, int) or not 0 <= n <= MAX_N:
        raise ValueError(f"n must be an integer from 0 to {MAX_N}")
    return _fib(n)


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)
