"""A platform never sees another tenant's items, contacts, clusters or jobs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.serve.conftest import ADOPTION_POST, SURROGACY_AD, screen


def test_platform_cannot_read_another_tenants_item(
    client: TestClient, platform: dict, other_platform: dict, reviewer: dict
) -> None:
    item = screen(client, platform, "p1", SURROGACY_AD)
    response = client.get(f"/v1/items/{item['id']}", headers=other_platform)
    assert response.status_code == 404
    assert response.json()["detail"] == f"no item with id {item['id']}"
    assert client.get(f"/v1/items/{item['id']}", headers=reviewer).status_code == 200


def test_item_list_is_per_tenant(client: TestClient, platform: dict, other_platform: dict, reviewer: dict) -> None:
    screen(client, platform, "p1", SURROGACY_AD)
    screen(client, other_platform, "p2", SURROGACY_AD)
    assert [i["external_id"] for i in client.get("/v1/items", headers=platform).json()["items"]] == ["p1"]
    assert [i["external_id"] for i in client.get("/v1/items", headers=other_platform).json()["items"]] == ["p2"]
    assert len(client.get("/v1/items", headers=reviewer).json()["items"]) == 2


def test_contact_links_cross_tenants_only_for_reviewers(
    client: TestClient, platform: dict, other_platform: dict, reviewer: dict
) -> None:
    a = screen(client, platform, "c1", SURROGACY_AD)  # wechat abc_test123
    b = screen(client, platform, "c2", ADOPTION_POST)  # same wechat id
    c = screen(client, other_platform, "c3", ADOPTION_POST)
    linked = client.get("/v1/contacts/ABC_test123/items", headers=reviewer).json()
    assert linked["value"] == "abc_test123"
    assert sorted(i["id"] for i in linked["items"]) == sorted([a["id"], b["id"], c["id"]])
    own = client.get("/v1/contacts/abc_test123/items", headers=platform).json()["items"]
    assert sorted(i["id"] for i in own) == sorted([a["id"], b["id"]])


def test_phone_written_differently_links_items(client: TestClient, platform: dict, reviewer: dict) -> None:
    a = screen(client, platform, "ph1", "代孕咨询 电话 138 0000 0001")
    b = screen(client, platform, "ph2", "代孕 包成功 壹叁捌零零零零零零零壹")
    items = client.get("/v1/contacts/138-0000-0001/items", headers=reviewer).json()["items"]
    assert sorted(i["id"] for i in items) == sorted([a["id"], b["id"]])


def test_cluster_members_are_filtered_by_tenant(
    client: TestClient, platform: dict, other_platform: dict, reviewer: dict
) -> None:
    base = "专业代孕 包成功 包男孩 价格优惠 全国可做 欢迎咨询 联系薇 abc_test123"
    a = screen(client, platform, "n1", base)
    b = screen(client, platform, "n2", base.replace("abc_test123", "xyz_test456") + "！")
    c = screen(client, other_platform, "n3", base + "。")
    assert a["cluster_id"] is None  # alone when it arrived
    assert b["cluster_id"] is not None and c["cluster_id"] == b["cluster_id"]
    cluster = b["cluster_id"]
    assert client.get(f"/v1/items/{a['id']}", headers=platform).json()["cluster_id"] == cluster
    seen_by_reviewer = client.get(f"/v1/clusters/{cluster}", headers=reviewer).json()
    assert sorted(i["id"] for i in seen_by_reviewer["items"]) == sorted([a["id"], b["id"], c["id"]])
    seen_by_alpha = client.get(f"/v1/clusters/{cluster}", headers=platform).json()
    assert sorted(i["id"] for i in seen_by_alpha["items"]) == sorted([a["id"], b["id"]])
    unrelated = screen(client, platform, "n4", "出售二手婴儿车 九成新 同城自提")
    assert unrelated["cluster_id"] is None


def test_platform_cannot_use_admin_endpoints(client: TestClient, platform: dict) -> None:
    response = client.post("/v1/admin/keys", json={"name": "x", "role": "admin"}, headers=platform)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_key_roles_and_tenants_must_match(client: TestClient, admin: dict) -> None:
    no_tenant = client.post("/v1/admin/keys", json={"name": "x", "role": "platform"}, headers=admin)
    assert no_tenant.status_code == 422 and "needs a tenant" in no_tenant.json()["detail"]
    reviewer_with_tenant = client.post("/v1/admin/keys", json={"name": "x", "role": "reviewer", "tenant": "a"}, headers=admin)
    assert reviewer_with_tenant.status_code == 422
    listed = client.get("/v1/admin/keys", headers=admin).json()["keys"]
    assert all("key" not in row and "key_hash" not in row for row in listed)
