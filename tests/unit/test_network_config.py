"""The network grant in agent.toml: private by default, egress domains validated and turned
into proxy filters, links and an nftables table; host shown to the operator as a risk."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from hyperhive.coordinator import egress as coord_egress
from hyperhive.hive import egress
from hyperhive.hive.agentconfig import ConfigError, parse, risks, risks_of, template, valid_domain
from hyperhive.hive.paths import Paths
from hyperhive.hive.vocab import Network


def test_a_new_agent_is_private_by_default() -> None:
    assert parse(template("alice")).network is Network.PRIVATE
    assert parse(template("hm1nd", manager=True)).network is Network.PRIVATE
    assert parse("").network is Network.PRIVATE and parse("").egress == ()


def test_the_template_shows_every_grant_commented_out() -> None:
    text = template("alice")
    for line in ('# network = "egress"', '# egress = ["pypi.org", "files.pythonhosted.org"]'):
        assert line in text
    assert '"host": the\n# host\'s whole network' in text


def test_egress_domains_are_kept_lower_cased() -> None:
    c = parse('network = "egress"\negress = ["PyPI.org", "*.pythonhosted.org", "a-b.c0.test"]')
    assert c.network is Network.EGRESS
    assert c.egress == ("pypi.org", "*.pythonhosted.org", "a-b.c0.test")


@pytest.mark.parametrize(
    "bad",
    [
        "localhost",  # one label: a name of this host
        "127.0.0.1",  # an address, not a name
        "1.2.3.4",
        "pypi.org:443",
        "https://pypi.org",
        "pypi.org/simple",
        "pypi.org.",
        ".pypi.org",
        "*.org",  # all of a top-level domain
        "*.*.pypi.org",
        "py pi.org",
        "-pypi.org",
        "pypi-.org",
        "a..org",
        "pÿpi.org",
        "pypi.org\n^.*$",  # a filter line of its own
        "x" * 64 + ".org",
        ".".join(["a" * 60] * 5),
        "",
    ],
)
def test_what_is_not_a_domain_name_is_refused_with_a_sentence(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"config key 'egress\[0\]' .* must be a domain name"):
        parse(f'network = "egress"\negress = [{bad!r}]'.replace("'", '"'))
    with pytest.raises(ConfigError):
        valid_domain(bad)


def test_more_than_200_domains_are_refused() -> None:
    many = ", ".join(f'"d{i}.org"' for i in range(201))
    with pytest.raises(ConfigError, match="'egress' has more than 200 entries"):
        parse(f'network = "egress"\negress = [{many}]')


def test_the_filter_allows_exactly_the_listed_names() -> None:
    rules = [egress.filter_rule(d) for d in ("pypi.org", "*.pythonhosted.org", "a-b.test")]
    assert rules == [
        r"^pypi\.org$",
        r"^([a-z0-9-]+\.)+pythonhosted\.org$",
        r"^a-b\.test$",
    ]

    def allowed(host: str) -> bool:  # tinyproxy: ERE, case-insensitive, on the host name
        return any(re.search(r, host, re.IGNORECASE) for r in rules)

    assert allowed("pypi.org") and allowed("PyPI.org")
    assert allowed("files.pythonhosted.org") and allowed("a.b.pythonhosted.org")
    assert not allowed("pythonhosted.org")  # "*." is below it, not it
    for host in ("pypi.org.evil.test", "xpypi.org", "pypiXorg", "evil.test", "151.101.0.223"):
        assert not allowed(host), host
    text = egress.render_filter(("pypi.org",))
    assert text.splitlines() == [egress.HEADER, r"^pypi\.org$"]


def test_links_take_a_slot_of_the_subnet_each() -> None:
    net = ipaddress.IPv4Network("10.77.0.0/16")
    first, third = (
        egress.link_for("alice", "h-alice", 0, net),
        egress.link_for("bob", "h-bob", 2, net),
    )
    assert (str(first.host), str(first.inside)) == ("10.77.0.1/30", "10.77.0.2/30")
    assert (str(third.host), str(third.inside)) == ("10.77.0.9/30", "10.77.0.10/30")
    assert egress.slots(net) == 16384
    with pytest.raises(egress.EgressSettingError, match="outside HIVE_EGRESS_SUBNET"):
        egress.link_for("x", "h-x", 16384, net)
    assert egress.parse_link(third.render()) == third
    assert third.environment()["HTTPS_PROXY"] == "http://10.77.0.9:3128"
    assert third.environment()["http_proxy"] == "http://10.77.0.9:3128"
    assert "localhost" in third.environment()["NO_PROXY"]


def test_interface_names_fit_in_15_characters_and_avoid_networkds_prefixes() -> None:
    assert egress.ifname("alice") == "hv-alice"
    long_a, long_b = (
        egress.ifname("a-very-long-agent-name"),
        egress.ifname("a-very-long-agent-nam2"),
    )
    assert len(long_a) <= 15 and len(long_b) <= 15 and long_a != long_b
    assert not egress.ifname("b").startswith(("ve-", "vb-", "vz-"))


def test_the_subnet_setting_is_checked() -> None:
    assert str(egress.subnet_from_env({})) == egress.DEFAULT_SUBNET
    assert str(egress.subnet_from_env({"HIVE_EGRESS_SUBNET": "172.30.0.0/24"})) == "172.30.0.0/24"
    for bad in ("nonsense", "10.0.0.1/16", "10.0.0.0/30", "fd00::/64"):
        with pytest.raises(egress.EgressSettingError, match="HIVE_EGRESS_SUBNET"):
            egress.subnet_from_env({"HIVE_EGRESS_SUBNET": bad})


def test_the_proxy_listens_on_the_agents_link_only_and_denies_by_default() -> None:
    link = egress.link_for("alice", "h-alice", 1, ipaddress.IPv4Network("10.77.0.0/16"))
    conf = egress.render_proxy(link, Path("/run/hyperhive/egress/alice/egress.filter"))
    lines = conf.splitlines()
    for line in (
        "Listen 10.77.0.5",
        "Port 3128",
        'Filter "/run/hyperhive/egress/alice/egress.filter"',
        "FilterType ere",
        "FilterDefaultDeny Yes",
        "ConnectPort 443",
    ):
        assert line in lines
    assert not any(line.startswith(("Allow", "Upstream", "ReversePath", "User")) for line in lines)


def test_the_ruleset_replaces_its_own_table_only() -> None:
    text = egress.ruleset(999, ipaddress.IPv4Network("10.77.0.0/16"))
    assert text.startswith("table inet hyperhive\ndelete table inet hyperhive\n")
    assert "flush ruleset" not in text
    assert 'iifname "hv-*" jump from_agent' in text
    assert "tcp dport 3128 fib daddr . iif type local accept" in text
    assert "meta skuid 999 jump from_proxy" in text
    for denied in ("127.0.0.0/8", "10.77.0.0/16", "169.254.0.0/16", "192.168.0.0/16"):
        assert denied in text


def test_host_is_a_risk_the_operator_reads_and_the_others_are_not() -> None:
    assert risks(parse('network = "private"'), "alice") == []
    assert risks(parse('network = "egress"\negress = ["pypi.org"]'), "alice") == []
    (risk,) = risks(parse('network = "host"'), "alice")
    assert risk.startswith('network = "host": alice shares the host\'s network')
    assert "the dashboard" in risk
    assert risks_of(b'network = "host"', "bob")[0].startswith('network = "host": bob')
    assert risks_of(b"network = 3", "bob")[0].startswith("this config does not validate")
    assert risks_of(None, "bob") == []


def _applied(paths: Paths, name: str, slot: int) -> None:
    repo = paths.applied_repo(name)
    repo.mkdir(parents=True)
    link = egress.link_for(name, f"h-{name}", slot, egress.subnet_from_env({}))
    (repo / egress.LINK_FILE).write_text(link.render())


def test_an_agent_keeps_its_slot_and_a_new_one_takes_the_lowest_free(tmp_path: Path) -> None:
    paths = Paths(state_dir=tmp_path, runtime_dir=tmp_path / "run", db=tmp_path / "hive.db")
    assert coord_egress.slot_for(paths, "alice") == 0  # nothing recorded yet
    _applied(paths, "alice", 0)
    _applied(paths, "carol", 2)
    (paths.applied_dir / ".bob.hyperhive-rev").write_text("x")  # not a repo: ignored
    assert coord_egress.slot_for(paths, "alice") == 0
    assert coord_egress.slot_for(paths, "carol") == 2
    assert coord_egress.slot_for(paths, "bob") == 1
    files = coord_egress.render(paths, "dave", parse('network = "egress"\negress = ["a.test"]'))
    assert sorted(files) == sorted(egress.FILES)
    assert b"SLOT=1\n" in files[egress.LINK_FILE]
    assert coord_egress.render(paths, "dave", parse("")) == {}
