"""Scrapes a luna process's /metrics with urllib, several scrapers at once,
parses every answer with prometheus_client's text parser and checks the
built-in families and the script metrics of metrics_service.lua."""
import sys
import threading
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PORT = int(sys.argv[1])
URL = f"http://127.0.0.1:{PORT}/metrics"


def scrape():
    with urllib.request.urlopen(URL, timeout=20) as response:
        assert response.status == 200, response.status
        content_type = response.headers["Content-Type"]
        assert content_type.startswith("text/plain; version=0.0.4"), content_type
        text = response.read().decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def check(families):
    def family(name, kind):
        assert name in families, f"no family {name}: {sorted(families)}"
        assert families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}"
        return samples(families[name])

    for name in ("luna_uptime_seconds", "luna_lua_memory_bytes", "luna_open_files", "luna_timers"):
        value = list(family(name, "gauge").values())[0]
        assert value >= 0, (name, value)
    assert list(family("luna_lua_memory_bytes", "gauge").values())[0] > 10000
    assert list(family("luna_open_files", "gauge").values())[0] > 3
    family("luna_log_dropped", "counter")
    open_sockets = family("luna_socket_open", "gauge")
    assert open_sockets[("luna_socket_open", (("mgr", "1"),))] == 1, open_sockets  # the script's listener
    assert open_sockets[("luna_socket_open", (("mgr", "metrics"),))] >= 2, open_sockets  # listener + us
    forwarded = family("luna_socket_forwarded", "counter")
    assert ("luna_socket_forwarded_total", (("mgr", "1"),)) in forwarded, forwarded
    family("luna_socket_max_fd", "gauge")
    assert family("luna_rpc_calls", "counter") == {("luna_rpc_calls_total", ()): 0}
    family("luna_rpc_pending", "gauge")
    family("luna_rpc_serving", "gauge")
    for name in families:
        assert name.startswith("luna_") or name in ("jobs", "queue_depth", "job_seconds", "restarts", "answer"), name

    jobs = family("jobs", "counter")
    assert families["jobs"].documentation == "Jobs done, by kind"
    assert jobs == {
        ("jobs_total", (("kind", "mail"),)): 3,
        ("jobs_total", (("kind", 'say "hi"\\\n'),)): 1,
    }, jobs
    assert family("restarts", "counter") == {("restarts_total", ()): 1}
    assert family("queue_depth", "gauge") == {("queue_depth", ()): 5}
    assert family("answer", "gauge") == {("answer", ()): 42}
    latency = family("job_seconds", "histogram")
    assert families["job_seconds"].documentation == "Job time\nin seconds, \\ included"
    kind = ("kind", "mail")
    expected = {
        ("job_seconds_bucket", (kind, ("le", "0.1"))): 1,
        ("job_seconds_bucket", (kind, ("le", "1.0"))): 2,
        ("job_seconds_bucket", (kind, ("le", "10.0"))): 2,
        ("job_seconds_bucket", (kind, ("le", "+Inf"))): 3,
        ("job_seconds_count", (kind,)): 3,
        ("job_seconds_sum", (kind,)): 50.55,
    }
    assert latency.keys() == expected.keys(), latency
    for key, value in expected.items():
        assert abs(latency[key] - value) < 1e-9, (key, latency[key], value)


def main():
    check(scrape())
    # Several scrapers at once.
    results, errors = [], []
    start = threading.Barrier(8)

    def worker():
        try:
            start.wait()
            results.append(scrape())
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == 8, len(results)
    for families in results:
        check(families)
    requests = samples(scrape()["luna_metrics_requests"])
    assert requests[("luna_metrics_requests_total", (("code", "200"),))] >= 9, requests
    # Other paths and methods.
    for path, method, code in (("/", "GET", 404), ("/metrics", "POST", 405)):
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method), timeout=20)
            raise AssertionError(f"{method} {path} succeeded")
        except urllib.error.HTTPError as error:
            assert error.code == code, (method, path, error.code)
    print("scrape ok")


main()
