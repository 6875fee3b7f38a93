"""The job seeker's status page: a signed link per request, a projection of the events about it, and
the person's actions (choose a callback window, correct, withdraw, turn the link off).

    links       signed, expiring, revocable tokens and the links intake sends (`StatusLinks`)
    projection  the entries the page reads, fed by the events (`StatusProjection`)
    handlers    the `intake.status` Kafka subscriber feeding it
    service     reading through a link and acting (`StatusService`)
    view        the page's content, pure; slots: the windows offered; texts: its words
    page        the routes (`router`)
"""

from intake.status.links import LOCAL_STATUS_LINK_KEY, StatusLinks, StatusTokens

__all__ = ["LOCAL_STATUS_LINK_KEY", "StatusLinks", "StatusTokens"]
