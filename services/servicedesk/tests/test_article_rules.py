"""Pure knowledge-base rules: the review workflow, editing, and how text becomes search terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_servicedesk.adapters.article_search import fts5_query_text, tsquery_text
from crm_servicedesk.domain import articles as rules
from crm_servicedesk.domain.articles import Article, ArticleInput, ArticleStatus
from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def article(status: ArticleStatus = ArticleStatus.DRAFT) -> Article:
    return Article(
        id="a1",
        title="Reset a password",
        body="Open settings.",
        author="sam",
        create_time=NOW,
        update_time=NOW,
        status=status,
    )


ACTIONS = sorted(rules.TRANSITIONS)


@given(status=st.sampled_from(list(ArticleStatus)), action=st.sampled_from(ACTIONS))
@settings(max_examples=100)
def test_each_action_moves_one_status_forward_or_names_what_it_needs(status, action):
    sources, target = rules.TRANSITIONS[action]
    if status in sources:
        moved = rules.transition(article(status), action, LATER)
        assert moved.status is target and moved.row_version == 2 and moved.update_time == LATER
        assert (moved.publish_time == LATER) == (target is ArticleStatus.PUBLISHED)
    else:
        with pytest.raises(FailedPrecondition) as caught:
            rules.transition(article(status), action, LATER)
        assert caught.value.reason.startswith("ARTICLE_NOT_")


def test_the_whole_life_of_an_article_keeps_its_first_publish_time_when_archived():
    live = rules.transition(rules.transition(article(), "submit", NOW), "publish", NOW)
    archived = rules.transition(live, "archive", LATER)
    assert archived.status is ArticleStatus.ARCHIVED and archived.publish_time == NOW


@pytest.mark.parametrize("status", [ArticleStatus.IN_REVIEW, ArticleStatus.ARCHIVED])
def test_editing_a_review_or_an_archived_article_makes_it_a_draft(status):
    edited, changed = rules.update_article(
        article(status),
        ArticleInput(title="Reset your password"),
        ["title"],
        now=LATER,
        violations=Violations(),
    )
    assert edited.status is ArticleStatus.DRAFT and changed == ["title", "status"]


def test_editing_a_published_article_is_refused_and_an_unchanged_edit_is_a_no_op():
    with pytest.raises(FailedPrecondition) as caught:
        rules.update_article(
            article(ArticleStatus.PUBLISHED),
            ArticleInput(title="x"),
            ["title"],
            now=LATER,
            violations=Violations(),
        )
    assert caught.value.reason == "ARTICLE_PUBLISHED"
    current = article(ArticleStatus.IN_REVIEW)
    same, changed = rules.update_article(
        current, ArticleInput(title=" Reset a password "), ["title"], now=LATER, violations=Violations()
    )
    assert same is current and changed == []  # still in review: nothing was edited


def test_new_article_checks_every_field_at_once_and_normalizes_tags():
    with pytest.raises(InvalidArgument) as caught:
        rules.new_article(
            ArticleInput(title=" ", body="", category="Billing/"),
            article_id="a",
            author="s",
            now=NOW,
            violations=Violations(),
        )
    assert {v.field for v in caught.value.field_violations} == {
        "article.title",
        "article.body",
        "article.category",
    }
    made = rules.new_article(
        ArticleInput(title="T", body="B", category="billing/invoices", tags=["VPN", " vpn", "", "Login"]),
        article_id="a",
        author="s",
        now=NOW,
        violations=Violations(),
    )
    assert made.tags == ["vpn", "login"] and made.status is ArticleStatus.DRAFT


@given(st.text(max_size=300))
@settings(max_examples=200)
def test_any_query_becomes_plain_words_or_a_clear_error(text):
    try:
        terms = rules.search_terms(text)
    except InvalidArgument:
        assert not any(ch.isalnum() for ch in text)  # refused only when there is no word at all
        return
    assert 1 <= len(terms.words) <= rules.MAX_QUERY_TERMS
    assert len(set(terms.words)) == len(terms.words)
    for word in terms.words:
        assert word.isalnum() and word == word.lower()
    # Nothing a user types reaches either database's query syntax except through these words.
    assert set(tsquery_text(terms)) - set("".join(terms.words)) <= set(" &:*")
    assert set(fts5_query_text(terms)) - set("".join(terms.words)) <= set(' "*')


def test_query_words_keep_their_order_and_the_last_is_a_prefix():
    terms = rules.search_terms("VPN: connection-timeout, vpn again")
    assert terms.words == ("vpn", "connection", "timeout", "again")
    assert tsquery_text(terms) == "vpn & connection & timeout & again:*"
    assert fts5_query_text(terms) == '"vpn" "connection" "timeout" "again"*'


def test_suggestions_keep_the_informative_words_subject_first():
    terms = rules.suggestion_terms(
        "Hello, printer offline",
        "Hi team, since yesterday the printer is offline again and again. 404 error. Thanks, Bo",
    )
    assert terms is not None and not terms.match_all and not terms.prefix_last
    assert terms.words[:2] == ("printer", "offline")
    assert not {"hello", "hi", "the", "is", "thanks", "404", "bo"} & set(terms.words)
    assert fts5_query_text(terms).startswith('"printer" OR "offline"')
    assert rules.suggestion_terms("Hi", "Thanks!") is None


@given(st.text(max_size=200), st.text(max_size=2000))
@settings(max_examples=100)
def test_suggestions_are_few_distinct_non_stop_words(subject, description):
    terms = rules.suggestion_terms(subject, description)
    if terms is None:
        return
    assert 1 <= len(terms.words) <= rules.MAX_SUGGESTION_TERMS
    assert len(set(terms.words)) == len(terms.words)
    assert not set(terms.words) & rules.STOP_WORDS
    assert all(len(w) >= rules.MIN_SUGGESTION_WORD and not w.isdigit() for w in terms.words)
