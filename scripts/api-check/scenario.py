"""A short scenario through a client generated from openapi/openapi.yaml (openapi-python-client),
against a running service: create a campaign, join it, read the campaign and the win, confirm it
(and fail to cancel it without the admin token), wait for the stats and
the rewards consumers. Usage: python scenario.py <base url> <admin token>. Exits non-zero on any
difference from what the API promises.
"""

import sys
import time
import uuid

from firstcome_client import AuthenticatedClient, Client
from firstcome_client.api.campaigns import get_api_v1_campaigns_id, post_api_v1_campaigns
from firstcome_client.api.participations import (
    get_api_v_1_campaigns_id_participations_user_id,
    post_api_v1_campaigns_id_participations,
    post_api_v_1_campaigns_id_participations_user_id_cancel,
    post_api_v_1_campaigns_id_participations_user_id_confirm,
)
from firstcome_client.api.rewards import get_api_v_1_users_user_id_rewards
from firstcome_client.api.stats import get_api_v1_campaigns_id_stats
from firstcome_client.models import (
    CampaignDto,
    CreateCampaign,
    ErrorBody,
    JoinBody,
    StateDto,
    StatusDto,
)


def expect(condition, what):
    if not condition:
        sys.exit(f"api-check scenario: {what}")
    print(f"api-check scenario: ok: {what}")


def until(what, check, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"api-check scenario: timed out waiting for {what}")


def main(base, token):
    admin = AuthenticatedClient(base_url=base, token=token)
    public = Client(base_url=base)
    user = int(uuid.uuid4().int % 1_000_000_000) + 1

    created = post_api_v1_campaigns.sync(
        client=admin, body=CreateCampaign(name="api-check", total_stock=2, reward_points=50)
    )
    expect(isinstance(created, CampaignDto), f"a campaign is created: {created}")
    campaign = created.id

    joined = post_api_v1_campaigns_id_participations.sync_detailed(
        campaign, client=public, body=JoinBody(user_id=user)
    )
    expect(joined.status_code == 201, f"the join is accepted (201): {joined.status_code}")
    again = post_api_v1_campaigns_id_participations.sync(
        campaign, client=public, body=JoinBody(user_id=user)
    )
    expect(
        isinstance(again, ErrorBody) and again.code.value == "ALREADY_PARTICIPATED",
        f"a second join by the same user is refused: {again}",
    )

    read = get_api_v1_campaigns_id.sync(campaign, client=public)
    expect(
        isinstance(read, CampaignDto)
        and read.remaining_stock == 1
        and read.accepted_count == 1
        and read.state == StateDto.OPEN,
        f"the campaign shows the win: {read}",
    )
    mine = get_api_v_1_campaigns_id_participations_user_id.sync(campaign, user, client=public)
    expect(getattr(mine, "user_id", None) == user, f"the user's participation is found: {mine}")
    confirmed = post_api_v_1_campaigns_id_participations_user_id_confirm.sync(
        campaign, user, client=public
    )
    expect(
        getattr(confirmed, "status", None) == StatusDto.CONFIRMED,
        f"confirming a win of a campaign without a window answers it as it is: {confirmed}",
    )
    refused = post_api_v_1_campaigns_id_participations_user_id_cancel.sync(
        campaign, user, client=public
    )
    expect(
        isinstance(refused, ErrorBody) and refused.code.value == "ALREADY_CONFIRMED",
        f"only an admin cancels a confirmed win: {refused}",
    )

    stats = until(
        "the stats consumer",
        lambda: (
            lambda s: s if getattr(s, "events_applied", 0) == 1 else None
        )(get_api_v1_campaigns_id_stats.sync(campaign, client=public)),
    )
    expect(stats.accepted_count == 1, f"the stats count the win: {stats}")

    rewards = until(
        "the rewards consumer",
        lambda: (
            lambda r: r if getattr(r, "points", 0) == 50 else None
        )(get_api_v_1_users_user_id_rewards.sync(user, client=public)),
    )
    expect(len(rewards.grants) == 1, f"one grant for the win: {rewards}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
