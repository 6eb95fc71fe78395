"""A short scenario through a client generated from openapi/openapi.yaml (openapi-python-client),
against a running service with USER_AUTH=jwt: create a campaign (admin token), join it with the
user's token (and be refused without one, or for another user), read the campaign and the win,
confirm it (and fail to cancel it without an admin token), wait for the stats and the rewards
consumers; then queue for a campaign with a waiting room, poll the ticket, and join with the
admission token it gives (and be refused without one). Usage: python scenario.py <base url> <admin token> <user id> <the user's JWT>. Exits
non-zero on any difference from what the API promises.
"""

import sys
import time

from firstcome_client import AuthenticatedClient, Client
from firstcome_client.api.campaigns import get_api_v1_campaigns_id, post_api_v1_campaigns
from firstcome_client.api.participations import (
    get_api_v_1_campaigns_id_participations_user_id,
    post_api_v1_campaigns_id_participations,
    post_api_v_1_campaigns_id_participations_user_id_cancel,
    post_api_v_1_campaigns_id_participations_user_id_confirm,
)
from firstcome_client.api.queue import (
    get_api_v1_campaigns_id_queue_ticket,
    post_api_v1_campaigns_id_queue,
)
from firstcome_client.api.rewards import get_api_v_1_users_user_id_rewards
from firstcome_client.api.stats import get_api_v1_campaigns_id_stats
from firstcome_client.models import (
    AdmissionDto,
    CampaignDto,
    CreateCampaign,
    ErrorBody,
    JoinBody,
    QueueBody,
    StateDto,
    TicketDto,
    TicketStateDto,
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


def main(base, token, user, user_token):
    admin = AuthenticatedClient(base_url=base, token=token)
    anonymous = Client(base_url=base)
    the_user = AuthenticatedClient(base_url=base, token=user_token)

    created = post_api_v1_campaigns.sync(
        client=admin, body=CreateCampaign(name="api-check", total_stock=2, reward_points=50)
    )
    expect(isinstance(created, CampaignDto), f"a campaign is created: {created}")
    campaign = created.id

    attempts = [(anonymous, user, "UNAUTHENTICATED"), (the_user, user + 1, "USER_MISMATCH")]
    for client, other, code in attempts:
        refused = post_api_v1_campaigns_id_participations.sync(
            campaign, client=client, body=JoinBody(user_id=other)
        )
        expect(
            isinstance(refused, ErrorBody) and refused.code.value == code,
            f"a join without the user's own token is refused ({code}): {refused}",
        )
    joined = post_api_v1_campaigns_id_participations.sync_detailed(
        campaign, client=the_user, body=JoinBody(user_id=user)
    )
    expect(joined.status_code == 201, f"the join is accepted (201): {joined.status_code}")
    again = post_api_v1_campaigns_id_participations.sync(
        campaign, client=the_user, body=JoinBody(user_id=user)
    )
    expect(
        isinstance(again, ErrorBody) and again.code.value == "ALREADY_PARTICIPATED",
        f"a second join by the same user is refused: {again}",
    )

    read = get_api_v1_campaigns_id.sync(campaign, client=the_user)
    expect(
        isinstance(read, CampaignDto)
        and read.remaining_stock == 1
        and read.accepted_count == 1
        and read.state == StateDto.OPEN,
        f"the campaign shows the win: {read}",
    )
    mine = get_api_v_1_campaigns_id_participations_user_id.sync(campaign, user, client=the_user)
    expect(getattr(mine, "user_id", None) == user, f"the user's participation is found: {mine}")
    confirmed = post_api_v_1_campaigns_id_participations_user_id_confirm.sync(
        campaign, user, client=the_user
    )
    expect(
        getattr(confirmed, "status", None) == StatusDto.CONFIRMED,
        f"confirming a win of a campaign without a window answers it as it is: {confirmed}",
    )
    refused = post_api_v_1_campaigns_id_participations_user_id_cancel.sync(
        campaign, user, client=the_user
    )
    expect(
        isinstance(refused, ErrorBody) and refused.code.value == "ALREADY_CONFIRMED",
        f"only an admin cancels a confirmed win: {refused}",
    )

    stats = until(
        "the stats consumer",
        lambda: (
            lambda s: s if getattr(s, "events_applied", 0) == 1 else None
        )(get_api_v1_campaigns_id_stats.sync(campaign, client=the_user)),
    )
    expect(stats.accepted_count == 1, f"the stats count the win: {stats}")

    rewards = until(
        "the rewards consumer",
        lambda: (
            lambda r: r if getattr(r, "points", 0) == 50 else None
        )(get_api_v_1_users_user_id_rewards.sync(user, client=the_user)),
    )
    expect(len(rewards.grants) == 1, f"one grant for the win: {rewards}")

    queued = post_api_v1_campaigns.sync(
        client=admin,
        body=CreateCampaign(
            name="api-check queue",
            total_stock=1,
            admission=AdmissionDto.QUEUE,
            admission_rate_per_second=10,
        ),
    )
    expect(
        isinstance(queued, CampaignDto) and queued.admission == AdmissionDto.QUEUE,
        f"a campaign with a waiting room is created: {queued}",
    )
    refused = post_api_v1_campaigns_id_participations.sync(
        queued.id, client=the_user, body=JoinBody(user_id=user)
    )
    expect(
        isinstance(refused, ErrorBody) and refused.code.value == "ADMISSION_REQUIRED",
        f"a join without an admission token is refused: {refused}",
    )
    ticket = post_api_v1_campaigns_id_queue.sync(
        queued.id, client=the_user, body=QueueBody(user_id=user)
    )
    expect(isinstance(ticket, TicketDto), f"the user queues: {ticket}")
    admitted = until(
        "the admission",
        lambda: (
            lambda t: t if getattr(t, "state", None) == TicketStateDto.ADMITTED else None
        )(get_api_v1_campaigns_id_queue_ticket.sync(queued.id, ticket.ticket, client=the_user)),
    )
    joined = post_api_v1_campaigns_id_participations.sync_detailed(
        queued.id,
        client=the_user,
        body=JoinBody(user_id=user, admission_token=admitted.admission_token),
    )
    expect(joined.status_code == 201, f"the admitted user joins (201): {joined.status_code}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
