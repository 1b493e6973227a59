"""What NodeRestriction reads, kept fresh by the informers: fake API server -> worker -> store -> lookups.

On SQLite and PostgreSQL: service accounts, PVCs and CSIDrivers are listed and watched like the
graph's resources; pods' and PVs' facts follow every event; a re-list drops the facts of objects
deleted meanwhile; a writer whose stored positions predate the facts re-lists once to fill them.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, delete

from app.admission.lookups import PodRecord
from app.graph.admission_facts import FactWriter
from app.graph.lookups import StoreLookups
from app.graph.schema import admission_fact_lists, admission_facts
from app.graph.store import GraphStore
from app.k8s.admission_facts import VIA_CSI, VIA_PVC, VolumeFact
from app.k8s.kinds import VertexKey
from app.sync.api_client import KubeApi
from tests.fake_apiserver import FakeApiServer
from tests.sync import test_worker
from tests.sync.test_worker import wait_for, worker_for
from tests.threads import running

server = test_worker.server  # the fixtures, shared
api = test_worker.api

RESOURCES = ["pods", "persistentvolumes", "serviceaccounts", "persistentvolumeclaims", "csidrivers"]


def web_pod(audience: str = "vault") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "web-sa",
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [
                {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"audience": audience}}]}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "inline", "csi": {"driver": "inline.csi.example.com"}},
            ],
        },
    }


def fill(server: FakeApiServer) -> None:
    server.create("pods", web_pod())
    server.create("serviceaccounts", {"metadata": {"namespace": "ns", "name": "web-sa", "uid": "sa-1"}})
    server.create(
        "persistentvolumeclaims",
        {"metadata": {"namespace": "ns", "name": "data"}, "spec": {"volumeName": "pv-1"}},
    )
    server.create(
        "persistentvolumes",
        {
            "metadata": {"name": "pv-1"},
            "spec": {
                "claimRef": {"namespace": "ns", "name": "data"},
                "awsElasticBlockStore": {"volumeID": "v"},
            },
        },
    )
    server.create(
        "csidrivers",
        {"metadata": {"name": "ebs.csi.aws.com"}, "spec": {"tokenRequests": [{"audience": "sts"}]}},
    )


def web(lookups: StoreLookups) -> PodRecord:
    record = lookups.pod("ns", "web")
    assert record is not None
    return record


def test_the_informers_keep_what_node_restriction_reads(
    server: FakeApiServer,
    api: KubeApi,
    store: GraphStore,
    engine: Engine,
) -> None:
    fill(server)
    lookups = StoreLookups(engine)
    worker = worker_for(store, api, resources=RESOURCES)
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
        facts = lookups.pod_facts(web(lookups))
        assert facts.service_account == "web-sa" and not facts.mirror
        assert facts.volumes == (
            VolumeFact(("vault",)),
            VolumeFact((), VIA_PVC, "data"),
            VolumeFact((), VIA_CSI, "inline.csi.example.com"),
        )
        assert lookups.service_account_uid("ns", "web-sa") == "sa-1"
        assert lookups.pvc_volume_name("ns", "data") == "pv-1"
        assert lookups.pv_csi_driver("pv-1") == "ebs.csi.aws.com"  # in-tree EBS, through CSI translation
        assert lookups.csidriver_audiences("ebs.csi.aws.com") == ("sts",)
        # Watch events: a changed CSIDriver, a PVC bound to another PV, a deleted service account.
        server.update(
            "csidrivers",
            {"metadata": {"name": "ebs.csi.aws.com"}, "spec": {"tokenRequests": [{"audience": "other"}]}},
        )
        server.update(
            "persistentvolumeclaims",
            {"metadata": {"namespace": "ns", "name": "data"}, "spec": {"volumeName": "pv-2"}},
        )
        server.delete("serviceaccounts", "web-sa", "ns")
        wait_for(lambda: lookups.csidriver_audiences("ebs.csi.aws.com") == ("other",))
        wait_for(lambda: lookups.pvc_volume_name("ns", "data") == "pv-2")
        wait_for(lambda: lookups.service_account_uid("ns", "web-sa") is None)
        server.delete("csidrivers", "ebs.csi.aws.com")
        wait_for(lambda: lookups.csidriver_audiences("ebs.csi.aws.com") is None)
        wait_for(lambda: FactWriter(engine, fence=store.fence).stored_keys("csidriver") == set())


def test_a_relist_drops_the_facts_of_objects_deleted_meanwhile(
    server: FakeApiServer,
    api: KubeApi,
    store: GraphStore,
    engine: Engine,
) -> None:
    fill(server)
    worker = worker_for(store, api, resources=RESOURCES)
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    server.delete("persistentvolumeclaims", "data", "ns")
    server.delete("pods", "web", "ns")
    server.compact()  # the stored positions are too old: the restarted writer re-lists
    restarted = worker_for(store, api, resources=RESOURCES)
    with running(restarted):
        wait_for(lambda: restarted.initial_sync_done)
    writer = FactWriter(engine, fence=store.fence)
    assert writer.stored_keys("pvc") == set() and writer.stored_keys("pod") == set()
    assert writer.stored_keys("pv") == {("pv", "", "pv-1")}


def test_positions_from_a_writer_without_facts_are_relisted_once(
    server: FakeApiServer,
    api: KubeApi,
    store: GraphStore,
    engine: Engine,
) -> None:
    fill(server)
    worker = worker_for(store, api, resources=RESOURCES)
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    # What a database synced by the previous version looks like: positions, objects, no facts.
    with engine.begin() as conn:
        conn.execute(delete(admission_facts))
        conn.execute(delete(admission_fact_lists))
    lookups = StoreLookups(engine)
    try:
        lookups.pod_facts(web(lookups))
        raise AssertionError("a pod stored without its facts must not be answered")
    except LookupError as exc:
        assert "stored without what NodeRestriction reads" in str(exc)
    lists = server.requests["list:pods"]
    restarted = worker_for(store, api, resources=RESOURCES)
    with running(restarted):
        wait_for(
            lambda: {"pods", "persistentvolumes", "persistentvolumeclaims", "csidrivers"} <= restarted.listed
        )
    assert server.requests["list:pods"] == lists + 1
    assert server.requests["list:serviceaccounts"] == 1  # no facts: resumed from its position
    assert lookups.pod_facts(web(lookups)).service_account == "web-sa"
    again = worker_for(store, api, resources=RESOURCES)
    with running(again):
        wait_for(lambda: server.watch_count("pods") > 0)
    assert server.requests["list:pods"] == lists + 1  # filled once: later restarts resume the watch


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha1"])
def test_pod_certificate_requests_are_watched_at_the_version_served(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine, version: str
) -> None:
    # certificates.k8s.io/v1 on 1.37+, v1beta1 on 1.35-1.36, v1alpha1 on 1.34 (gate on).
    server.served["podcertificaterequests"] = f"certificates.k8s.io/{version}"
    server.create(
        "podcertificaterequests",
        {"metadata": {"namespace": "ns", "name": "web-0-x"}, "spec": {"nodeName": "n1", "podName": "web-0"}},
    )
    worker = worker_for(store, api, resources=["podcertificaterequests"])
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    assert [s.version for s in worker.served] == [version]
    assert store.owned_keys("podcertificaterequest") == {("podcertificaterequest", "ns", "web-0-x")}


def test_facts_the_database_cannot_key_are_skipped_not_blocking(store: GraphStore, engine: Engine) -> None:
    """A namespace no API server accepts (300 characters) cannot key a row on PostgreSQL (the store sets
    such an object aside); its facts are skipped and the rest of the batch is written."""
    writer = FactWriter(engine, fence=store.fence)
    long_key = VertexKey("pod", "n" * 300, "web")
    writer.write([(long_key, b'{"sa": "x"}'), (VertexKey("pod", "ns", "web"), b'{"sa": "y"}')], [long_key])
    assert writer.stored_keys("pod") == {("pod", "ns", "web")}
