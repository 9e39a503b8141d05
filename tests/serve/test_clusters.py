"""Near-duplicate campaign clusters: re-posts join a cluster, and a post similar to members of
two clusters merges them (the older cluster survives, sizes add up, the merge is audited)."""

from __future__ import annotations

import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from serve.db_models import Cluster, Item
from serve.similarity import band_keys, minhash, similarity
from tests.serve.conftest import screen

# Two invented ads that share an opening but not enough to be one campaign, each re-posted
# with another contact, and a post that carries both bodies: it is a near-duplicate of each.
CORE = "专业代孕 包成功 包男孩 价格优惠 全国可做"
A1 = f"{CORE} 北京试管医院合作 联系薇 abc_test123"
A2 = A1.replace("abc_test123", "xyz_test456") + "！"
B1 = f"{CORE} 外籍供卵 可选性别 扣扣 100000123"
B2 = B1.replace("100000123", "100000456") + "。"
BRIDGE = f"{A1} 外籍供卵 可选性别 扣扣 100000123"
MIN_SIMILARITY = 0.6  # the default `cluster_min_similarity`


def test_texts_are_what_the_tests_assume() -> None:
    signature = {text: minhash(text) for text in (A1, A2, B1, B2, BRIDGE)}

    def similar(a: str, b: str) -> bool:
        shares_a_band = set(band_keys(signature[a])) & set(band_keys(signature[b]))
        return bool(shares_a_band) and similarity(signature[a], signature[b]) >= MIN_SIMILARITY

    assert similar(A1, A2) and similar(B1, B2)
    assert not any(similar(a, b) for a in (A1, A2) for b in (B1, B2))
    assert similar(BRIDGE, A1) and similar(BRIDGE, B1)


def _cluster_rows(app: FastAPI) -> dict[int, tuple[int, int]]:
    """Each cluster's stored size and its actual number of members."""
    with app.state.services.db.read() as session:
        sizes = {cluster: size for cluster, size in session.execute(select(Cluster.id, Cluster.size))}
        members = {
            cluster: count
            for cluster, count in session.execute(
                select(Item.cluster_id, func.count()).where(Item.cluster_id.is_not(None)).group_by(Item.cluster_id)
            )
        }
    return {cluster: (size, members.get(cluster, 0)) for cluster, size in sizes.items()}


def test_reposts_join_the_cluster_of_the_first_post(app: FastAPI, client: TestClient, platform: dict) -> None:
    a1 = screen(client, platform, "a1", A1)
    a2 = screen(client, platform, "a2", A2)
    b1 = screen(client, platform, "b1", B1)
    assert a1["cluster_id"] is None  # alone when it arrived
    assert a2["cluster_id"] == a1["id"]
    assert b1["cluster_id"] is None  # a different campaign
    assert _cluster_rows(app) == {a1["id"]: (2, 2)}


def test_a_post_similar_to_two_clusters_merges_them_into_the_older(
    app: FastAPI, client: TestClient, platform: dict, reviewer: dict
) -> None:
    a1, a2 = screen(client, platform, "a1", A1), screen(client, platform, "a2", A2)
    b1, b2 = screen(client, platform, "b1", B1), screen(client, platform, "b2", B2)
    older, newer = a1["id"], b1["id"]
    assert (a2["cluster_id"], b2["cluster_id"]) == (older, newer)

    bridge = screen(client, platform, "bridge", BRIDGE)

    assert bridge["cluster_id"] == older
    members = client.get(f"/v1/clusters/{older}", headers=reviewer).json()["items"]
    assert sorted(i["id"] for i in members) == sorted(i["id"] for i in (a1, a2, b1, b2, bridge))
    assert client.get(f"/v1/items/{b2['id']}", headers=platform).json()["cluster_id"] == older
    assert client.get(f"/v1/clusters/{newer}", headers=reviewer).status_code == 404
    assert _cluster_rows(app) == {older: (5, 5)}

    entries = client.get(f"/v1/items/{bridge['id']}/audit", headers=reviewer).json()["entries"]
    merge = next(e for e in entries if e["action"] == "cluster.merge")
    assert merge["before"] == {"clusters": [{"id": older, "size": 2}, {"id": newer, "size": 2}]}
    assert merge["after"] == {"cluster": older, "size": 5, "merged": [newer]}
    assert "platform" in merge["actor"]


def test_a_lone_post_bridged_to_a_cluster_joins_it_without_a_merge(
    app: FastAPI, client: TestClient, platform: dict, reviewer: dict
) -> None:
    a1, a2 = screen(client, platform, "a1", A1), screen(client, platform, "a2", A2)
    b1 = screen(client, platform, "b1", B1)
    bridge = screen(client, platform, "bridge", BRIDGE)
    assert bridge["cluster_id"] == a1["id"]
    assert client.get(f"/v1/items/{b1['id']}", headers=platform).json()["cluster_id"] == a1["id"]
    assert _cluster_rows(app) == {a1["id"]: (4, 4)}
    assert a2["cluster_id"] == a1["id"]
    entries = client.get(f"/v1/items/{bridge['id']}/audit", headers=reviewer).json()["entries"]
    assert "cluster.merge" not in [e["action"] for e in entries]


def test_a_bridge_inside_one_batch_makes_one_cluster(app: FastAPI, client: TestClient, platform: dict) -> None:
    items = [{"external_id": f"x{i}", "text": text} for i, text in enumerate((A1, B1, BRIDGE, B2))]
    response = client.post("/v1/screen", json={"items": items}, headers=platform)
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    first = results[0]["id"]
    assert [r["cluster_id"] for r in results] == [first] * 4
    assert _cluster_rows(app) == {first: (4, 4)}


def test_a_batch_bridging_stored_clusters_merges_them(app: FastAPI, client: TestClient, platform: dict) -> None:
    a1, a2 = screen(client, platform, "a1", A1), screen(client, platform, "a2", A2)
    b1, b2 = screen(client, platform, "b1", B1), screen(client, platform, "b2", B2)
    items = [{"external_id": "y0", "text": B2 + "！"}, {"external_id": "y1", "text": BRIDGE}]
    response = client.post("/v1/screen", json={"items": items}, headers=platform)
    assert response.status_code == 200, response.text
    assert [r["cluster_id"] for r in response.json()["items"]] == [a1["id"], a1["id"]]
    assert _cluster_rows(app) == {a1["id"]: (6, 6)}
    assert a2["cluster_id"] == a1["id"] and b2["cluster_id"] == b1["id"]


def test_concurrent_bridges_keep_every_cluster_size_right(app: FastAPI, platform: dict, monkeypatch) -> None:
    """Posts joining and merging the same clusters at once: on PostgreSQL every writer plans
    before any of them writes (stale plans: the merged cluster is gone, or locked, when the
    others write), yet every request succeeds and every cluster's size stays its number of
    members. SQLite runs the writers one at a time."""
    from serve import crud
    from serve.schemas import ScreenItemIn

    services = app.state.services
    (key,) = _keys(app)
    for i, text in enumerate((A1, A2, B1, B2)):
        services.screening.screen(submitter=key, items=[ScreenItemIn(external_id=f"s{i}", text=text)])
    texts = [BRIDGE + "！" * i for i in range(3)] + [A2 + "。" * i for i in range(3)] + [B2 + "！" * i for i in range(3)]
    if services.db.dialect == "postgresql":
        planned = threading.Barrier(len(texts))
        first_try = threading.local()
        real_assign = crud._assign_clusters

        def assign_then_wait(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - test double
            plan = real_assign(*args, **kwargs)
            if not getattr(first_try, "done", False):
                first_try.done = True
                planned.wait(timeout=60)
            return plan

        monkeypatch.setattr(crud, "_assign_clusters", assign_then_wait)
    start = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def submit(i: int, text: str) -> None:
        start.wait()
        try:
            services.screening.screen(submitter=key, items=[ScreenItemIn(external_id=f"c{i}", text=text)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i, t)) for i, t in enumerate(texts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    rows = _cluster_rows(app)
    assert all(size == members for size, members in rows.values()), rows
    assert list(rows) == [min(rows)] and rows[min(rows)][1] == 4 + len(texts)


def _keys(app: FastAPI) -> list:
    from serve.db_models import ApiKey

    with app.state.services.db.read() as session:
        return list(session.scalars(select(ApiKey).where(ApiKey.tenant == "alpha")))


def test_a_batch_grows_its_clusters_in_id_order(app: FastAPI, client: TestClient, platform: dict) -> None:
    """Every writer takes the cluster rows it grows in the same (id) order, whatever the order
    of its posts: two batches re-posting campaigns A and B in opposite orders would otherwise
    each hold one row and wait for the other (a PostgreSQL deadlock, one request failed)."""
    from sqlalchemy import event

    a1 = screen(client, platform, "a1", A1)
    screen(client, platform, "a2", A2)
    b1 = screen(client, platform, "b1", B1)
    screen(client, platform, "b2", B2)
    assert a1["id"] < b1["id"]
    grown: list[list[int]] = []

    def record(_conn, _cursor, statement, parameters, _context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE CLUSTERS SET SIZE"):
            rows = parameters if executemany else [parameters]
            grown.append([row["cid"] if isinstance(row, dict) else row[-1] for row in rows])

    engine = app.state.services.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.post(
            "/v1/screen",
            headers=platform,
            json={"items": [{"external_id": "b3", "text": B2 + "。"}, {"external_id": "a3", "text": A2 + "。"}]},
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    assert [r["cluster_id"] for r in response.json()["items"]] == [b1["id"], a1["id"]]
    assert grown == [[a1["id"], b1["id"]]]
    assert _cluster_rows(app) == {a1["id"]: (3, 3), b1["id"]: (3, 3)}

