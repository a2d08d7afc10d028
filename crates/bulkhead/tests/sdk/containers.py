"""The Docker SDK for Python (Debian's python3-docker 5.0.3) against bulkhead's Engine API.

Usage: /usr/bin/python3 containers.py IMAGE MODE...   (MODE: process or hyperv; DOCKER_HOST set)
For each mode: create, start, wait (exit code), logs (stdout and stderr apart), a streamed `logs -f`,
exec (output and exit code), stop and remove. Prints `MODE KERNEL` per mode for the caller to compare.
"""

import sys

import docker


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)


def one_mode(client, image, mode):
    name = "sdk-%s" % mode
    c = client.containers.create(
        image,
        ["sh", "-c", "echo out-$0; echo err-$0 >&2; uname -r; exit 3", mode],
        name=name,
        isolation=mode,
    )
    check(c.attrs["HostConfig"]["Isolation"] == mode, "inspect shows isolation %s" % mode)
    c.start()
    result = c.wait(timeout=180)
    check(result["StatusCode"] == 3, "exit code 3, got %r" % result)
    out = c.logs(stdout=True, stderr=False).decode()
    err = c.logs(stdout=False, stderr=True).decode()
    check(out.startswith("out-%s\n" % mode), "stdout %r" % out)
    check(err == "err-%s\n" % mode, "stderr %r" % err)
    kernel = out.splitlines()[1]
    c.remove()
    check(name not in [x.name for x in client.containers.list(all=True)], "removed")

    # A running container: streamed logs while it writes, then exec, then stop.
    r = client.containers.run(
        image,
        ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done; exec sleep 300"],
        detach=True,
        isolation=mode,
        name=name + "-run",
    )
    seen = []
    for chunk in r.logs(stream=True, follow=True):
        seen.extend(chunk.decode().split())
        if "line3" in seen:
            break
    check(seen[:3] == ["line1", "line2", "line3"], "streamed logs %r" % seen)
    r.reload()
    check(r.status == "running", "status %s" % r.status)
    code, output = r.exec_run(["sh", "-c", "echo exec-$((40+2)); exit 5"])
    check(code == 5 and output == b"exec-42\n", "exec %r %r" % (code, output))
    r.stop(timeout=1)
    r.reload()
    check(r.status == "exited", "stopped: %s" % r.status)
    r.remove(force=True)
    return kernel


def main():
    image, modes = sys.argv[1], sys.argv[2:]
    client = docker.from_env(version="1.47", timeout=300)
    check(client.ping(), "ping")
    for mode in modes:
        print(mode, one_mode(client, image, mode), flush=True)


main()
