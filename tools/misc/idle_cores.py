"""Print how many CPU cores are free now (at least 1).

One spinning process per core runs for half a second; the CPU time they get
together, divided by the wall time, is the number of cores nobody else
uses. `make demo` gives torch that many threads: on an idle 2-core machine
two threads train the demo about twice as fast as one, while on a busy one
two threads made a step 20x slower (docs/install.md).

Usage: python tools/misc/idle_cores.py [--seconds S]
"""
import argparse
import os
import time


def _spin(seconds: float, write_fd: int) -> None:
    """Child: spin for ``seconds`` of wall time, write the CPU time got."""
    start = time.process_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    os.write(write_fd, f'{time.process_time() - start:.6f}\n'.encode())
    os._exit(0)


def free_cores(seconds: float = 0.5) -> int:
    """The cores free now: CPU time got by one spinner per core / wall.

    Args:
        seconds: how long the spinners run.

    Returns:
        int: at least 1, at most ``os.cpu_count()``.
    """
    cores = os.cpu_count() or 1
    if cores == 1 or not hasattr(os, 'fork'):
        return 1
    read_fd, write_fd = os.pipe()
    children = []
    for _ in range(cores):
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _spin(seconds, write_fd)
        children.append(pid)
    os.close(write_fd)
    for pid in children:
        os.waitpid(pid, 0)
    with os.fdopen(read_fd) as results:
        got = sum(float(line) for line in results if line.strip())
    # a core counts when its spinner got most of it
    return max(1, min(cores, int(got / seconds + 0.25)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=0.5,
                        help='how long to measure (default 0.5)')
    print(free_cores(parser.parse_args().seconds))


if __name__ == '__main__':
    main()
