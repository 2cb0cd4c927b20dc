from factories import bearer


def test_login_and_read_own_party(client, enterprise):
    headers = bearer(client, enterprise)
    r = client.get(f"/api/v1/parties/{enterprise.party_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == enterprise.party_id
