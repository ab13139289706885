"""Knowledge-base articles: the entity, its review workflow and how search text becomes terms.

Pure rules: a transition takes an Article and returns a new one, or raises
FailedPrecondition naming the status it needed. Search queries are reduced here to
plain lower-case words so both databases (PostgreSQL full-text search with the
'simple' configuration, SQLite FTS5 with unicode61) see exactly the same terms.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

MAX_TITLE = 300
MAX_BODY = 200_000
MAX_TAGS = 30
MAX_TAG = 64
# A longer query adds little precision but makes every term's posting list part of the plan.
MAX_QUERY_TERMS = 12
# Suggestions OR their terms: a few informative words find related articles, many find everything.
MAX_SUGGESTION_TERMS = 8
MIN_SUGGESTION_WORD = 3

CATEGORY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")
# Letters and digits; everything else (punctuation, markup, operators of either search syntax)
# separates words, so user text can never inject tsquery or FTS5 query syntax.
_WORD = re.compile(r"[^\W_]+")

UPDATABLE_FIELDS = frozenset({"title", "body", "category", "tags"})


class ArticleStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    ARCHIVED = "archived"


# action -> (statuses it starts from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[ArticleStatus], ArticleStatus]] = {
    "submit": (frozenset({ArticleStatus.DRAFT}), ArticleStatus.IN_REVIEW),
    "publish": (frozenset({ArticleStatus.IN_REVIEW}), ArticleStatus.PUBLISHED),
    "archive": (frozenset({ArticleStatus.PUBLISHED}), ArticleStatus.ARCHIVED),
}


@dataclass(frozen=True)
class ArticleInput:
    title: str = ""
    body: str = ""
    category: str = ""
    tags: Sequence[str] = ()


@dataclass(kw_only=True)
class Article:
    id: str
    title: str
    body: str
    author: str
    create_time: datetime
    update_time: datetime
    category: str = ""
    tags: list[str] = field(default_factory=list)
    status: ArticleStatus = ArticleStatus.DRAFT
    view_count: int = 0
    helpful_count: int = 0
    not_helpful_count: int = 0
    publish_time: datetime | None = None
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"articles/{self.id}"


# --- input -------------------------------------------------------------------------------------


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-case, first occurrence kept: "Billing" and "billing " are one tag."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = tag.strip().lower()
        if cleaned:
            seen.setdefault(cleaned)
    return list(seen)


def _check(data: ArticleInput, fields: Iterable[str], violations: Violations) -> None:
    chosen = set(fields)
    if "title" in chosen and not data.title.strip():
        violations.add("article.title", "is required")
    if "title" in chosen and len(data.title.strip()) > MAX_TITLE:
        violations.add("article.title", f"must be at most {MAX_TITLE} characters")
    if "body" in chosen and not data.body.strip():
        violations.add("article.body", "is required")
    if "body" in chosen and len(data.body) > MAX_BODY:
        violations.add("article.body", f"must be at most {MAX_BODY} characters")
    if "category" in chosen and data.category and not CATEGORY_PATTERN.match(data.category):
        violations.add("article.category", 'must be a path of lower-case segments like "billing/invoices"')
    if "tags" in chosen:
        tags = normalize_tags(data.tags)
        if len(tags) > MAX_TAGS:
            violations.add("article.tags", f"at most {MAX_TAGS} tags")
        if any(len(tag) > MAX_TAG for tag in tags):
            violations.add("article.tags", f"each tag at most {MAX_TAG} characters")
    violations.raise_if_any("the article has invalid fields")


def new_article(
    data: ArticleInput, *, article_id: str, author: str, now: datetime, violations: Violations
) -> Article:
    """A DRAFT written by `author`."""
    _check(data, UPDATABLE_FIELDS, violations)
    return Article(
        id=article_id,
        title=data.title.strip(),
        body=data.body,
        category=data.category,
        tags=normalize_tags(data.tags),
        author=author,
        create_time=now,
        update_time=now,
    )


def update_article(
    current: Article, data: ArticleInput, fields: Iterable[str], *, now: datetime, violations: Violations
) -> tuple[Article, list[str]]:
    """The edited article and the fields that really changed (the same object when none did).

    A PUBLISHED article is what customers read: it is archived before it is edited, so a
    half-finished edit never goes live. Editing a review or an archived article makes it a
    DRAFT again: it has to be reviewed before it is published (again).
    """
    if current.status is ArticleStatus.PUBLISHED:
        raise FailedPrecondition(
            f"{current.name} is published; archive it before editing it",
            reason="ARTICLE_PUBLISHED",
            metadata={"resource": current.name, "status": current.status.value},
        )
    chosen = sorted(set(fields))
    _check(data, chosen, violations)
    proposed = {
        "title": data.title.strip(),
        "body": data.body,
        "category": data.category,
        "tags": normalize_tags(data.tags),
    }
    changes = {name: proposed[name] for name in chosen if proposed[name] != getattr(current, name)}
    if not changes:
        return current, []
    changed = list(changes)
    if current.status is not ArticleStatus.DRAFT:
        changes["status"] = ArticleStatus.DRAFT
        changed.append("status")
    return replace(current, **changes, update_time=now, row_version=current.row_version + 1), changed


# --- workflow ----------------------------------------------------------------------------------


def transition(article: Article, action: str, now: datetime) -> Article:
    """submit / publish / archive, or FAILED_PRECONDITION naming the status the action needs."""
    sources, target = TRANSITIONS[action]
    if article.status not in sources:
        needed = sorted(s.value for s in sources)
        raise FailedPrecondition(
            f"cannot {action} {article.name}: it is {article.status.value}; "
            f"{action} needs {' or '.join(needed)}",
            reason=f"ARTICLE_NOT_{'_OR_'.join(sorted(s.name for s in sources))}",
            metadata={"resource": article.name, "status": article.status.value, "action": action},
        )
    publish_time = now if target is ArticleStatus.PUBLISHED else article.publish_time
    return replace(
        article,
        status=target,
        publish_time=publish_time,
        update_time=now,
        row_version=article.row_version + 1,
    )


def check_countable(article: Article, what: str) -> None:
    """Views and votes count only for what readers can see: PUBLISHED articles."""
    if article.status is not ArticleStatus.PUBLISHED:
        raise FailedPrecondition(
            f"cannot record a {what} on {article.name}: it is {article.status.value}, not published",
            reason="ARTICLE_NOT_PUBLISHED",
            metadata={"resource": article.name, "status": article.status.value},
        )


# --- search terms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchTerms:
    """Lower-case words to look for.

    match_all: every word must occur (a search); otherwise any may (a suggestion, ranked by
    how many match and where). prefix_last: the last word also matches longer words
    ("invoi" finds "invoice"), for search-as-you-type.
    """

    words: tuple[str, ...]
    match_all: bool = True
    prefix_last: bool = True

    @property
    def canonical(self) -> str:
        """The same text for the same terms (binds page tokens to the query)."""
        mode = "all" if self.match_all else "any"
        return f"{mode}:{int(self.prefix_last)}:{' '.join(self.words)}"


def words_of(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def search_terms(query: str) -> SearchTerms:
    """A user's query -> at most MAX_QUERY_TERMS distinct words, in order; INVALID_ARGUMENT if none."""
    words = list(dict.fromkeys(words_of(query)))[:MAX_QUERY_TERMS]
    if not words:
        raise InvalidArgument.for_field("query", "needs at least one word (letters or digits)")
    return SearchTerms(tuple(words))


# Words that say nothing about a problem (English, plus the greetings tickets start with).
_STOP_WORDS_TEXT = """
a about above after again against all also am an and any are aren as at be because been before
being below between both but by can cannot could did didn do does doesn doing don down during each
even ever few for from further get gets got had has have having he her here hers herself him himself
his how however i if in into is isn it its itself just let like me more most much my myself need
needs no nor not now of off on once only or other our ours ourselves out over own please same she
should so some still such than thank thanks that the their theirs them themselves then there these
they this those through to too under until up us very was wasn we were what when where which while
who whom why will with won would you your yours yourself yourselves hello hi dear regards best cheers
anyone someone something anything today yesterday tomorrow since way ok okay yes
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def suggestion_terms(
    subject: str, description: str, *, limit: int = MAX_SUGGESTION_TERMS
) -> SearchTerms | None:
    """The most informative words of a ticket, OR-ed: None when it has none worth searching for.

    Informative: not a stop word, at least MIN_SUGGESTION_WORD characters, not a bare number.
    Ranked by how often the ticket uses a word (subject words count double: the customer chose
    them to name the problem), then by length (longer words are rarer), then by first use.
    """
    weights: Counter[str] = Counter()
    first_use: dict[str, int] = {}
    for weight, text in ((2, subject), (1, description)):
        for word in words_of(text):
            if len(word) < MIN_SUGGESTION_WORD or word.isdigit() or word in STOP_WORDS:
                continue
            weights[word] += weight
            first_use.setdefault(word, len(first_use))
    ranked = sorted(weights, key=lambda w: (-weights[w], -len(w), first_use[w]))[:limit]
    if not ranked:
        return None
    return SearchTerms(tuple(ranked), match_all=False, prefix_last=False)
