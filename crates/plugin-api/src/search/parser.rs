//! The filter and order-by parser.
//!
//! Two passes. A winnow grammar turns the text into a raw tree in which every token keeps its
//! byte span; [`super::validate`] then checks entities, keys, comparators and values for the
//! search kind and builds the typed [`Expr`]. Both passes report the 0-based character
//! position and the offending token, so every error points at what to fix.

use super::validate::{self, SemanticError};
use super::{Expr, Op, OrderBy, SearchKind};
use crate::{Error, Result};
use std::cell::Cell;
use std::ops::Range;
use winnow::ascii::Caseless;
use winnow::combinator::{alt, cut_err, not, opt, preceded, repeat, terminated};
use winnow::error::{AddContext, ErrMode, ParserError};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Location, Stateful, Stream};
use winnow::token::{literal, one_of, take_while};

/// The text, with spans, and what the parse has used of its [`Budget`].
type Input<'a> = Stateful<LocatingSlice<&'a str>, &'a Budget>;
type PResult<T> = winnow::ModalResult<T, SyntaxError>;

/// How deeply parentheses may nest: the parser, the evaluator and SQL translations recurse
/// once per level, so an unbounded depth would let one request exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// Most comparisons in one filter. Every store's query grows with them (SQLite refuses an
/// expression deeper than 1000), and a request must not buy unbounded work.
pub const MAX_COMPARISONS: usize = 500;

/// Most strings in one `IN (...)` list, checked while the list is read, so a huge list costs
/// no more memory than this many items.
pub const MAX_LIST_ITEMS: usize = 10_000;

/// Most `order_by` keys in one search.
pub const MAX_ORDER_BY_KEYS: usize = 100;

/// How much of a text an error message quotes; longer texts are cut with `...`.
const MAX_QUOTED_CHARS: usize = 1000;

/// What one parse has used: the current parenthesis depth and the comparisons read.
#[derive(Debug, Default)]
struct Budget {
    depth: Cell<usize>,
    comparisons: Cell<usize>,
}

fn input<'a>(text: &'a str, budget: &'a Budget) -> Input<'a> {
    Stateful {
        input: LocatingSlice::new(text),
        state: budget,
    }
}

/// The limit a parse ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Nesting,
    Comparisons,
    ListItems,
}

/// `text` as error messages quote it: whole, or its first [`MAX_QUOTED_CHARS`] characters and
/// `...`, so the answer to a huge filter is not huge.
fn quoted_text(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]).into(),
        None => text.into(),
    }
}

/// Parses `filter` for a search of `kind`; an empty or blank filter is `None`.
///
/// Errors are [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the
/// character position and the token at fault.
pub fn parse_filter(kind: SearchKind, filter: &str) -> Result<Option<Expr>> {
    if filter.trim().is_empty() {
        return Ok(None);
    }
    let budget = Budget::default();
    let raw = match filter_text.parse_next(&mut input(filter, &budget)) {
        Ok(raw) => raw,
        Err(e) => return Err(syntax_error(Source::Filter, filter, into_inner(e))),
    };
    validate::filter(kind, raw, filter)
        .map(Some)
        .map_err(|e| semantic_error(Source::Filter, filter, e))
}

/// Parses the `order_by` clauses of a search of `kind`, each `<identifier> [ASC|DESC]`.
///
/// Errors are [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the
/// clause, the character position in it and the token at fault.
pub fn parse_order_by(kind: SearchKind, clauses: &[String]) -> Result<Vec<OrderBy>> {
    if clauses.len() > MAX_ORDER_BY_KEYS {
        return Err(Error::invalid(format!(
            "Invalid order_by: {} clauses given, at most {MAX_ORDER_BY_KEYS} are allowed",
            clauses.len()
        )));
    }
    let mut out: Vec<OrderBy> = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let budget = Budget::default();
        let raw = match order_clause.parse_next(&mut input(clause, &budget)) {
            Ok(raw) => raw,
            Err(e) => return Err(syntax_error(Source::OrderBy, clause, into_inner(e))),
        };
        let order = validate::order_by(kind, raw, &out, clauses, clause)
            .map_err(|e| semantic_error(Source::OrderBy, clause, e))?;
        out.push(order);
    }
    Ok(out)
}

// ----- raw tree -------------------------------------------------------------------------------

/// A value with the byte range of the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// A filter before validation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawExpr {
    And(Vec<RawExpr>),
    Or(Vec<RawExpr>),
    Compare(RawComparison),
}

/// `[entity .] key` before validation; quotes are already removed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawIdent {
    pub entity: Option<Spanned<String>>,
    pub key: Spanned<String>,
}

/// One comparison before validation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawComparison {
    pub ident: RawIdent,
    pub op: Spanned<Op>,
    pub value: Spanned<RawValue>,
}

/// A right-hand side as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawValue {
    /// A quoted string, unescaped.
    Str(String),
    /// A number; `integer` when written without a fraction or exponent.
    Num { value: f64, integer: bool },
    /// An unquoted word (`abc`, `true`): kept so validation can give MLflow's message.
    Bare,
    /// A parenthesised list (possibly empty: validation rejects that with MLflow's message).
    List(Vec<Spanned<RawValue>>),
    /// No value (`IS NULL`).
    None,
}

/// One `order_by` clause before validation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawOrderBy {
    pub ident: RawIdent,
    /// The word after the identifier, if any (`ASC`, `desc`, or something invalid).
    pub direction: Option<Spanned<String>>,
}

// ----- errors ---------------------------------------------------------------------------------

/// A syntax error: where it happened and what was expected there.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SyntaxError {
    /// Byte offset of the offending token.
    offset: usize,
    /// What the grammar expected at `offset`.
    expected: Option<&'static str>,
    /// A quoted string or identifier starting at `offset` has no closing quote.
    unterminated: bool,
    /// The construct at `offset` goes over one of the parser's limits.
    limit: Option<Limit>,
}

impl SyntaxError {
    fn at(offset: usize) -> Self {
        SyntaxError {
            offset,
            expected: None,
            unterminated: false,
            limit: None,
        }
    }
}

impl<'a> ParserError<Input<'a>> for SyntaxError {
    type Inner = Self;

    fn from_input(input: &Input<'a>) -> Self {
        SyntaxError::at(input.current_token_start())
    }

    /// Keeps the error that got furthest: it is the one nearest to what the user meant.
    fn or(self, other: Self) -> Self {
        if self.offset > other.offset {
            self
        } else if other.offset > self.offset || other.expected.is_some() {
            other
        } else {
            self
        }
    }

    fn into_inner(self) -> std::result::Result<Self::Inner, Self> {
        Ok(self)
    }
}

impl<'a> AddContext<Input<'a>, &'static str> for SyntaxError {
    /// Labels the error with what was expected, when it happened where the labelled parser
    /// started (a deeper failure keeps its own, more precise label).
    fn add_context(
        mut self,
        input: &Input<'a>,
        token_start: &<Input<'a> as Stream>::Checkpoint,
        context: &'static str,
    ) -> Self {
        let mut start = *input;
        start.reset(token_start);
        if start.current_token_start() == self.offset {
            self.expected = Some(context);
        }
        self
    }
}

fn into_inner(e: ErrMode<SyntaxError>) -> SyntaxError {
    match e {
        ErrMode::Backtrack(e) | ErrMode::Cut(e) => e,
        // Only partial streams report `Incomplete`; ours is complete.
        ErrMode::Incomplete(_) => SyntaxError::at(0),
    }
}

/// What was being parsed, for the wording of errors.
#[derive(Debug, Clone, Copy)]
enum Source {
    Filter,
    OrderBy,
}

/// The 0-based character position of byte offset `byte` in `text`.
fn char_position(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].chars().count()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_bare_value(c: char) -> bool {
    is_word(c) || matches!(c, '.' | '-' | '/' | ':')
}

/// The token starting at byte `offset`, for error messages: a quoted string up to its closing
/// quote, a word, a comparator, or one character.
pub(super) fn token_at(text: &str, offset: usize) -> &str {
    let rest = &text[offset.min(text.len())..];
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else {
        return "";
    };
    let end = match first {
        '\'' | '"' | '`' => {
            // Up to the closing quote, as `quoted` reads it (doubled or escaped quotes inside).
            let mut chars = chars.peekable();
            let mut end = rest.len();
            while let Some((i, c)) = chars.next() {
                if c == '\\' {
                    chars.next();
                } else if c == first {
                    if chars.peek().is_some_and(|&(_, n)| n == first) {
                        chars.next();
                    } else {
                        end = i + c.len_utf8();
                        break;
                    }
                }
            }
            end
        }
        c if is_word(c) || c == '.' => rest.find(|c: char| !is_bare_value(c)).unwrap_or(rest.len()),
        '-' | '+' if rest[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
            1 + rest[1..]
                .find(|c: char| !is_bare_value(c))
                .unwrap_or(rest.len() - 1)
        }
        _ if ["<=", ">=", "!=", "<>", "=="]
            .iter()
            .any(|op| rest.starts_with(op)) =>
        {
            2
        }
        c => c.len_utf8(),
    };
    &rest[..end]
}

fn syntax_error(source: Source, text: &str, e: SyntaxError) -> Error {
    let position = char_position(text, e.offset);
    let token = token_at(text, e.offset);
    let found = if let Some(limit) = e.limit {
        match limit {
            Limit::Nesting => {
                format!("parentheses nest deeper than {MAX_NESTING} levels at position {position}")
            }
            Limit::Comparisons => format!(
                "more than {MAX_COMPARISONS} comparisons (at position {position}); \
                 split the search into several"
            ),
            Limit::ListItems => format!(
                "a list of more than {MAX_LIST_ITEMS} values (at position {position}); \
                 split the search into several"
            ),
        }
    } else if e.unterminated {
        format!("unterminated quoted text '{token}' at position {position}")
    } else if token.is_empty() {
        format!("unexpected end of input at position {position}")
    } else {
        format!("unexpected token '{token}' at position {position}")
    };
    let expected = e
        .expected
        .map(|x| format!(", expected {x}"))
        .unwrap_or_default();
    let text = quoted_text(text);
    Error::invalid(match source {
        Source::Filter => format!("Invalid filter '{text}': {found}{expected}"),
        Source::OrderBy => {
            format!("Invalid order_by clause '{text}'. Could not be parsed: {found}{expected}")
        }
    })
    .with_context("position", position)
}

fn semantic_error(source: Source, text: &str, e: SemanticError) -> Error {
    let position = char_position(text, e.span.start);
    let token = quoted_text(&text[e.span.clone()]);
    let message = e.message;
    let text = quoted_text(text);
    Error::invalid(match source {
        Source::Filter => {
            format!("Invalid filter '{text}': {message} (token '{token}' at position {position})")
        }
        Source::OrderBy => {
            format!("{message} (order_by clause '{text}': token '{token}' at position {position})")
        }
    })
    .with_context("position", position)
}

// ----- grammar --------------------------------------------------------------------------------

fn ws(i: &mut Input<'_>) -> PResult<()> {
    take_while(0.., char::is_whitespace).void().parse_next(i)
}

/// A case-insensitive keyword not followed by a word character (`AND`, but not `ANDROID`).
fn kw<'a>(word: &'static str) -> impl Parser<Input<'a>, (), ErrMode<SyntaxError>> {
    terminated(literal(Caseless(word)), not(one_of(is_word))).void()
}

/// `filter := or_expr`, surrounded by optional whitespace, to the end of the text.
fn filter_text(i: &mut Input<'_>) -> PResult<RawExpr> {
    ws(i)?;
    let expr = or_expr(i)?;
    ws(i)?;
    end_of_input
        .context("AND, OR or the end of the filter")
        .parse_next(i)?;
    Ok(expr)
}

fn end_of_input(i: &mut Input<'_>) -> PResult<()> {
    winnow::combinator::eof.void().parse_next(i)
}

fn or_expr(i: &mut Input<'_>) -> PResult<RawExpr> {
    let first = and_expr(i)?;
    let rest: Vec<RawExpr> = repeat(
        0..,
        preceded((ws, kw("OR")), cut_err(preceded(ws, and_expr))),
    )
    .parse_next(i)?;
    Ok(join(first, rest, true))
}

fn and_expr(i: &mut Input<'_>) -> PResult<RawExpr> {
    let first = primary(i)?;
    let rest: Vec<RawExpr> = repeat(
        0..,
        preceded((ws, kw("AND")), cut_err(preceded(ws, primary))),
    )
    .parse_next(i)?;
    Ok(join(first, rest, false))
}

/// Joins operands into one `Or` (or `And`), flattening operands of the same kind.
fn join(first: RawExpr, rest: Vec<RawExpr>, or: bool) -> RawExpr {
    if rest.is_empty() {
        return first;
    }
    let mut all = Vec::with_capacity(rest.len() + 1);
    for e in std::iter::once(first).chain(rest) {
        match (e, or) {
            (RawExpr::Or(inner), true) | (RawExpr::And(inner), false) => all.extend(inner),
            (e, _) => all.push(e),
        }
    }
    if or {
        RawExpr::Or(all)
    } else {
        RawExpr::And(all)
    }
}

fn primary(i: &mut Input<'_>) -> PResult<RawExpr> {
    alt((parenthesised, comparison.map(RawExpr::Compare)))
        .context("a comparison or '('")
        .parse_next(i)
}

fn parenthesised(i: &mut Input<'_>) -> PResult<RawExpr> {
    let start = i.current_token_start();
    '('.parse_next(i)?;
    let depth = &i.state.depth;
    if depth.get() >= MAX_NESTING {
        return Err(ErrMode::Cut(SyntaxError {
            limit: Some(Limit::Nesting),
            ..SyntaxError::at(start)
        }));
    }
    depth.set(depth.get() + 1);
    let inner = |i: &mut Input<'_>| -> PResult<RawExpr> {
        let expr = cut_err(preceded(ws, or_expr)).parse_next(i)?;
        ws(i)?;
        cut_err(')'.context("AND, OR or ')'")).parse_next(i)?;
        Ok(expr)
    };
    let result = inner(i);
    depth.set(depth.get() - 1);
    result
}

fn comparison(i: &mut Input<'_>) -> PResult<RawComparison> {
    let comparisons = &i.state.comparisons;
    if comparisons.get() >= MAX_COMPARISONS {
        return Err(ErrMode::Cut(SyntaxError {
            limit: Some(Limit::Comparisons),
            ..SyntaxError::at(i.current_token_start())
        }));
    }
    comparisons.set(comparisons.get() + 1);
    let ident = identifier(i)?;
    ws(i)?;
    let (op, op_span) = cut_err(operator.context("a comparator"))
        .with_span()
        .parse_next(i)?;
    let value = match op {
        Op::IsNull | Op::IsNotNull => Spanned {
            value: RawValue::None,
            span: op_span.clone(),
        },
        Op::In | Op::NotIn => {
            ws(i)?;
            let (items, span) = cut_err(list.context("'('")).with_span().parse_next(i)?;
            Spanned {
                value: RawValue::List(items),
                span,
            }
        }
        _ => {
            ws(i)?;
            let (value, span) = cut_err(scalar.context("a quoted string or a number"))
                .with_span()
                .parse_next(i)?;
            Spanned { value, span }
        }
    };
    Ok(RawComparison {
        ident,
        op: Spanned {
            value: op,
            span: op_span,
        },
        value,
    })
}

fn operator(i: &mut Input<'_>) -> PResult<Op> {
    alt((symbol_operator, word_operator)).parse_next(i)
}

fn symbol_operator(i: &mut Input<'_>) -> PResult<Op> {
    alt((
        "<=".value(Op::Le),
        ">=".value(Op::Ge),
        "!=".value(Op::Ne),
        "=".value(Op::Eq),
        "<".value(Op::Lt),
        ">".value(Op::Gt),
    ))
    .parse_next(i)
}

fn word_operator(i: &mut Input<'_>) -> PResult<Op> {
    alt((
        kw("LIKE").value(Op::Like),
        kw("ILIKE").value(Op::ILike),
        kw("RLIKE").value(Op::RLike),
        kw("IN").value(Op::In),
        (kw("NOT"), ws, cut_err(kw("IN").context("IN"))).value(Op::NotIn),
        is_null,
    ))
    .parse_next(i)
}

/// `IS [NOT] NULL`.
fn is_null(i: &mut Input<'_>) -> PResult<Op> {
    kw("IS").parse_next(i)?;
    ws(i)?;
    let not = opt(terminated(kw("NOT"), ws)).parse_next(i)?;
    cut_err(kw("NULL").context("NULL or NOT NULL")).parse_next(i)?;
    Ok(if not.is_some() {
        Op::IsNotNull
    } else {
        Op::IsNull
    })
}

/// A string, a number, or an unquoted word (rejected later with MLflow's message).
fn scalar(i: &mut Input<'_>) -> PResult<RawValue> {
    alt((
        quoted('\'').map(RawValue::Str),
        quoted('"').map(RawValue::Str),
        number,
        take_while(1.., is_bare_value).value(RawValue::Bare),
    ))
    .parse_next(i)
}

fn number(i: &mut Input<'_>) -> PResult<RawValue> {
    let text = (
        opt(one_of(['+', '-'])),
        alt((
            (digits, opt(('.', opt(digits)))).void(),
            ('.', digits).void(),
        )),
        opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digits)),
    )
        .take()
        .parse_next(i)?;
    // `1abc` is not a number followed by a word: let the caller see one bare token.
    not(one_of(is_bare_value)).parse_next(i)?;
    let value: f64 = text
        .parse()
        .map_err(|_| ErrMode::Backtrack(SyntaxError::from_input(i)))?;
    Ok(RawValue::Num {
        value,
        integer: !text.contains(['.', 'e', 'E']),
    })
}

fn digits<'a>(i: &mut Input<'a>) -> PResult<&'a str> {
    take_while(1.., |c: char| c.is_ascii_digit()).parse_next(i)
}

/// `'(' scalar ( ',' scalar )* ')'`, or `()` (rejected later with MLflow's message).
fn list(i: &mut Input<'_>) -> PResult<Vec<Spanned<RawValue>>> {
    '('.parse_next(i)?;
    ws(i)?;
    if opt(')').parse_next(i)?.is_some() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    loop {
        ws(i)?;
        let (value, span) = cut_err(scalar.context("a quoted string"))
            .with_span()
            .parse_next(i)?;
        if items.len() == MAX_LIST_ITEMS {
            return Err(ErrMode::Cut(SyntaxError {
                limit: Some(Limit::ListItems),
                ..SyntaxError::at(span.start)
            }));
        }
        items.push(Spanned { value, span });
        ws(i)?;
        let sep = cut_err(alt((',', ')')).context("',' or ')'")).parse_next(i)?;
        if sep == ')' {
            return Ok(items);
        }
    }
}

/// Text between `quote`s. A quote inside is written twice or escaped with a backslash; `\\`
/// is one backslash; any other backslash is kept as written.
fn quoted<'a>(quote: char) -> impl Parser<Input<'a>, String, ErrMode<SyntaxError>> {
    move |i: &mut Input<'a>| {
        let start = i.current_token_start();
        if i.peek_token() != Some(quote) {
            return Err(ErrMode::Backtrack(SyntaxError::at(start)));
        }
        i.next_token();
        let mut out = String::new();
        loop {
            match i.next_token() {
                None => {
                    return Err(ErrMode::Cut(SyntaxError {
                        unterminated: true,
                        ..SyntaxError::at(start)
                    }));
                }
                Some('\\') => match i.peek_token() {
                    Some(c) if c == quote || c == '\\' => {
                        i.next_token();
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some(c) if c == quote => {
                    if i.peek_token() == Some(quote) {
                        i.next_token();
                        out.push(quote);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }
}

/// A word starting with a letter or `_`.
fn bare_word(i: &mut Input<'_>) -> PResult<String> {
    (
        one_of(|c: char| c.is_alphabetic() || c == '_'),
        take_while(0.., is_word),
    )
        .take()
        .map(String::from)
        .parse_next(i)
}

/// A bare key after `entity.`: words joined by dots (`mlflow.source.type`), digits allowed
/// first (`metrics.1st`).
fn bare_key(i: &mut Input<'_>) -> PResult<String> {
    (
        take_while(1.., is_word),
        repeat::<_, _, (), _, _>(0.., ('.', take_while(1.., is_word))),
    )
        .take()
        .map(String::from)
        .parse_next(i)
}

fn identifier(i: &mut Input<'_>) -> PResult<RawIdent> {
    let (first, first_span) = alt((quoted('`'), quoted('"'), bare_word))
        .with_span()
        .parse_next(i)?;
    let first = Spanned {
        value: first,
        span: first_span,
    };
    if opt('.').parse_next(i)?.is_none() {
        return Ok(RawIdent {
            entity: None,
            key: first,
        });
    }
    let (mut key, mut span) =
        cut_err(alt((quoted('`'), quoted('"'), bare_key)).context("a key after '.'"))
            .with_span()
            .parse_next(i)?;
    // A bare key may end in one quoted segment: ``span.attributes.`mlflow.spanType` ``.
    if let Some((last, last_span)) = opt(preceded('.', quoted('`')).with_span()).parse_next(i)? {
        key = format!("{key}.{last}");
        span.end = last_span.end;
    }
    Ok(RawIdent {
        entity: Some(first),
        key: Spanned { value: key, span },
    })
}

/// `order_by := identifier [ word ]`, the word checked later (ASC, DESC).
fn order_clause(i: &mut Input<'_>) -> PResult<RawOrderBy> {
    ws(i)?;
    let ident = identifier.context("an identifier").parse_next(i)?;
    ws(i)?;
    let direction = opt(take_while(1.., is_word).with_span())
        .parse_next(i)?
        .map(|(word, span)| Spanned {
            value: word.to_string(),
            span,
        });
    ws(i)?;
    let expected = if direction.is_some() {
        "the end of the clause"
    } else {
        "ASC, DESC or the end of the clause"
    };
    end_of_input.context(expected).parse_next(i)?;
    Ok(RawOrderBy { ident, direction })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> std::result::Result<RawExpr, SyntaxError> {
        let budget = Budget::default();
        filter_text
            .parse_next(&mut input(text, &budget))
            .map_err(into_inner)
    }

    #[test]
    fn tokens_for_messages() {
        assert_eq!(token_at("a >> 1", 3), ">");
        assert_eq!(token_at("a >= 1", 2), ">=");
        assert_eq!(token_at("x = 'it''s' AND", 4), "'it''s'");
        assert_eq!(token_at("x = 'open", 4), "'open");
        assert_eq!(token_at("x = -1.5e3 y", 4), "-1.5e3");
        assert_eq!(token_at("x = foo.bar baz", 4), "foo.bar");
        assert_eq!(token_at("x", 1), "");
        assert_eq!(token_at("é!", 2), "!");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(char_position("tags.é = 'x' >", 14), 13);
        let e = parse_filter(SearchKind::Runs, "tags.`é` = 'x' >").unwrap_err();
        assert!(e.message.contains("at position 15"), "{}", e.message);
    }

    #[test]
    fn numbers_are_recognised_with_their_integer_flag() {
        let num = |text: &str| match raw(&format!("metrics.a = {text}")).unwrap() {
            RawExpr::Compare(c) => c.value.value,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            num("42"),
            RawValue::Num {
                value: 42.0,
                integer: true
            }
        );
        assert_eq!(
            num("-1.5e-3"),
            RawValue::Num {
                value: -1.5e-3,
                integer: false
            }
        );
        assert_eq!(
            num(".5"),
            RawValue::Num {
                value: 0.5,
                integer: false
            }
        );
        assert_eq!(
            num("+7"),
            RawValue::Num {
                value: 7.0,
                integer: true
            }
        );
        assert_eq!(num("1abc"), RawValue::Bare);
        assert_eq!(num("1e"), RawValue::Bare);
    }

    #[test]
    fn quoted_text_unescapes_doubled_and_backslashed_quotes() {
        let value = |text: &str| match raw(&format!("tags.a = {text}")).unwrap() {
            RawExpr::Compare(c) => c.value.value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("'it''s'"), RawValue::Str("it's".into()));
        assert_eq!(value(r"'it\'s'"), RawValue::Str("it's".into()));
        assert_eq!(value(r#""say \"hi\"""#), RawValue::Str("say \"hi\"".into()));
        assert_eq!(value(r"'a\\b'"), RawValue::Str(r"a\b".into()));
        assert_eq!(value(r"'C:\path'"), RawValue::Str(r"C:\path".into()));
        assert_eq!(value("''"), RawValue::Str(String::new()));
    }

    #[test]
    fn syntax_errors_carry_offset_and_expectation() {
        let e = raw("metrics.a >> 1").unwrap_err();
        assert_eq!(e.offset, 11);
        assert_eq!(e.expected, Some("a quoted string or a number"));
        let e = raw("(metrics.a > 1").unwrap_err();
        assert_eq!((e.offset, e.expected), (14, Some("AND, OR or ')'")));
        let e = raw("metrics.a > 1 AND").unwrap_err();
        assert_eq!((e.offset, e.expected), (17, Some("a comparison or '('")));
        let e = raw("metrics.a > 1 metrics.b < 2").unwrap_err();
        assert_eq!(
            (e.offset, e.expected),
            (14, Some("AND, OR or the end of the filter"))
        );
        let e = raw("tags.a = 'x").unwrap_err();
        assert!(e.unterminated);
        assert_eq!(e.offset, 9);
        let e = raw("run_id NOT LIKE 'a'").unwrap_err();
        assert_eq!((e.offset, e.expected), (11, Some("IN")));
        let e = raw("tags.a IS NOTNULL").unwrap_err();
        assert_eq!((e.offset, e.expected), (10, Some("NULL or NOT NULL")));
    }

    // ----- parse_filter / parse_order_by, the public API ----------------------------------

    use crate::ErrorKind;
    use crate::search::{Comparison, Entity, Key, Value};

    fn parse(kind: SearchKind, text: &str) -> Expr {
        match parse_filter(kind, text) {
            Ok(Some(e)) => e,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn runs(text: &str) -> Expr {
        parse(SearchKind::Runs, text)
    }

    fn cmp(entity: Entity, name: &str, op: Op, value: Value) -> Expr {
        Expr::Compare(Comparison {
            key: Key::new(entity, name),
            op,
            value,
        })
    }

    fn num(entity: Entity, name: &str, op: Op, n: f64) -> Expr {
        cmp(entity, name, op, Value::Number(n))
    }

    fn string(entity: Entity, name: &str, op: Op, v: &str) -> Expr {
        cmp(entity, name, op, Value::String(v.into()))
    }

    fn list(entity: Entity, name: &str, op: Op, items: &[&str]) -> Expr {
        cmp(
            entity,
            name,
            op,
            Value::List(items.iter().map(|s| s.to_string()).collect()),
        )
    }

    /// The error message for `text`, checking it is `InvalidArgument` and contains `parts`.
    #[track_caller]
    fn error(kind: SearchKind, text: &str, parts: &[&str]) -> String {
        let e = parse_filter(kind, text).expect_err(text);
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{text}: {}", e.message);
        for part in parts {
            assert!(
                e.message.contains(part),
                "{text}: message {:?} lacks {part:?}",
                e.message
            );
        }
        e.message
    }

    #[track_caller]
    fn order_error(kind: SearchKind, clauses: &[&str], parts: &[&str]) -> String {
        let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
        let e = parse_order_by(kind, &owned).expect_err(clauses[0]);
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
        for part in parts {
            assert!(
                e.message.contains(part),
                "{clauses:?}: message {:?} lacks {part:?}",
                e.message
            );
        }
        e.message
    }

    fn order(kind: SearchKind, clauses: &[&str]) -> Vec<OrderBy> {
        let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
        parse_order_by(kind, &owned).unwrap_or_else(|e| panic!("{clauses:?}: {e}"))
    }

    fn ob(entity: Entity, name: &str, ascending: bool) -> OrderBy {
        OrderBy {
            key: Key::new(entity, name),
            ascending,
        }
    }

    use Entity::{Attribute as A, Dataset as D, Metric as M, Param as P, Tag as T};

    #[test]
    fn comparisons_list_items_and_order_by_keys_are_bounded() {
        let and = |n: usize| vec!["metrics.a > 1"; n].join(" AND ");
        parse_filter(SearchKind::Runs, &and(MAX_COMPARISONS)).unwrap();
        let e = parse_filter(SearchKind::Runs, &and(1100)).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(
            e.message.contains("more than 500 comparisons"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 2000, "the whole filter was quoted back");

        let list = |n: usize| format!("attributes.run_id IN ({})", vec!["'a'"; n].join(","));
        parse_filter(SearchKind::Runs, &list(MAX_LIST_ITEMS)).unwrap();
        let e = parse_filter(SearchKind::Runs, &list(1_000_000)).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(
            e.message.contains("more than 10000 values"),
            "{}",
            e.message
        );

        let keys = |n: usize| vec!["metrics.a".to_owned(); n];
        let e = parse_order_by(SearchKind::Runs, &keys(5000)).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(e.message.contains("at most 100"), "{}", e.message);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{}metrics.a > 1{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(runs(&ok), num(M, "a", Op::Gt, 1.0));
        let deep = format!("metrics.b < 0 OR {}", "(".repeat(100_000));
        error(
            SearchKind::Runs,
            &deep,
            &[
                "parentheses nest deeper than 64 levels at position 81",
                "'('",
            ],
        );
        // Sibling groups do not add up.
        let wide = vec!["(metrics.a > 1)"; 200].join(" AND ");
        assert!(parse_filter(SearchKind::Runs, &wide).is_ok());
    }

    #[test]
    fn blank_filters_are_none() {
        for text in ["", "   ", "\n\t"] {
            assert_eq!(parse_filter(SearchKind::Runs, text).unwrap(), None);
        }
    }

    #[test]
    fn runs_accept_every_comparator_per_entity() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
        ] {
            assert_eq!(runs(&format!("metrics.m {text} 1.5")), num(M, "m", op, 1.5));
            assert_eq!(
                runs(&format!("start_time {text} 10")),
                num(A, "start_time", op, 10.0)
            );
            assert_eq!(
                runs(&format!("end_time {text} -3")),
                num(A, "end_time", op, -3.0)
            );
        }
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("LIKE", Op::Like),
            ("ILIKE", Op::ILike),
        ] {
            assert_eq!(
                runs(&format!("params.p {text} 'v'")),
                string(P, "p", op, "v")
            );
            assert_eq!(runs(&format!("tags.t {text} 'v'")), string(T, "t", op, "v"));
            for attr in ["run_id", "run_name", "user_id", "status", "artifact_uri"] {
                assert_eq!(
                    runs(&format!("attributes.{attr} {text} 'v'")),
                    string(A, attr, op, "v")
                );
            }
            for field in ["name", "digest", "context"] {
                assert_eq!(
                    runs(&format!("datasets.{field} {text} 'v'")),
                    string(D, field, op, "v")
                );
            }
        }
        for (text, op) in [("IS NULL", Op::IsNull), ("IS NOT NULL", Op::IsNotNull)] {
            assert_eq!(
                runs(&format!("params.p {text}")),
                cmp(P, "p", op, Value::None)
            );
            assert_eq!(
                runs(&format!("tags.t {text}")),
                cmp(T, "t", op, Value::None)
            );
        }
        for (text, op) in [("IN", Op::In), ("NOT IN", Op::NotIn)] {
            assert_eq!(
                runs(&format!("run_id {text} ('a', \"b\")")),
                list(A, "run_id", op, &["a", "b"])
            );
            assert_eq!(
                runs(&format!("datasets.context {text} ('train')")),
                list(D, "context", op, &["train"])
            );
        }
    }

    #[test]
    fn keywords_and_comparators_are_case_insensitive() {
        assert_eq!(runs("params.p like 'a%'"), string(P, "p", Op::Like, "a%"));
        assert_eq!(runs("params.p iLike 'a%'"), string(P, "p", Op::ILike, "a%"));
        assert_eq!(
            runs("tags.t is not null"),
            cmp(T, "t", Op::IsNotNull, Value::None)
        );
        assert_eq!(
            runs("run_id not  in ('x')"),
            list(A, "run_id", Op::NotIn, &["x"])
        );
        assert_eq!(
            runs("metrics.a > 1 and metrics.b < 2 or metrics.c = 3"),
            Expr::Or(vec![
                Expr::And(vec![num(M, "a", Op::Gt, 1.0), num(M, "b", Op::Lt, 2.0)]),
                num(M, "c", Op::Eq, 3.0),
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_groups_flatten() {
        let (a, b, c, d) = (
            num(M, "a", Op::Gt, 1.0),
            num(M, "b", Op::Gt, 1.0),
            num(M, "c", Op::Gt, 1.0),
            num(M, "d", Op::Gt, 1.0),
        );
        assert_eq!(
            runs("metrics.a > 1 OR metrics.b > 1 AND metrics.c > 1"),
            Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])])
        );
        assert_eq!(
            runs("(metrics.a > 1 OR metrics.b > 1) AND metrics.c > 1"),
            Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            runs("metrics.a > 1 AND (metrics.b > 1 AND (metrics.c > 1)) AND metrics.d > 1"),
            Expr::And(vec![a.clone(), b.clone(), c.clone(), d.clone()])
        );
        assert_eq!(
            runs("(metrics.a > 1 OR metrics.b > 1) OR (metrics.c > 1 OR metrics.d > 1)"),
            Expr::Or(vec![a.clone(), b.clone(), c.clone(), d.clone()])
        );
        assert_eq!(runs("((metrics.a > 1))"), a.clone());
        assert_eq!(
            runs(" ( metrics.a>1 )AND(metrics.b>1) "),
            Expr::And(vec![a, b])
        );
    }

    #[test]
    fn identifiers_accept_mlflow_quoting_forms() {
        assert_eq!(
            runs("tags.`mlflow.source.type` = 'NOTEBOOK'"),
            string(T, "mlflow.source.type", Op::Eq, "NOTEBOOK")
        );
        assert_eq!(
            runs("tags.mlflow.source.type = 'NOTEBOOK'"),
            string(T, "mlflow.source.type", Op::Eq, "NOTEBOOK")
        );
        assert_eq!(
            runs("params.\"my param\" = \"v\""),
            string(P, "my param", Op::Eq, "v")
        );
        assert_eq!(runs("`metrics`.x > 0"), num(M, "x", Op::Gt, 0.0));
        assert_eq!(runs("\"metrics\".`a b` > 0"), num(M, "a b", Op::Gt, 0.0));
        assert_eq!(runs("metrics.1st > 0"), num(M, "1st", Op::Gt, 0.0));
        assert_eq!(
            runs("tags.`with ``tick`` and \\` ` = 'x'"),
            string(T, "with `tick` and ` ", Op::Eq, "x")
        );
        assert_eq!(
            runs("params.p = 'it''s' AND params.q = \"say \\\"hi\\\"\""),
            Expr::And(vec![
                string(P, "p", Op::Eq, "it's"),
                string(P, "q", Op::Eq, "say \"hi\""),
            ])
        );
        assert_eq!(
            runs("params.p = 'ünï çødé'"),
            string(P, "p", Op::Eq, "ünï çødé")
        );
    }

    #[test]
    fn numbers_accept_signs_fractions_and_exponents() {
        for (text, n) in [
            ("0", 0.0),
            ("-1", -1.0),
            ("+2", 2.0),
            ("1.25", 1.25),
            ("-0.5", -0.5),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("2.5E-2", 0.025),
            ("-1e+2", -100.0),
        ] {
            assert_eq!(runs(&format!("metrics.m > {text}")), num(M, "m", Op::Gt, n));
        }
    }

    #[test]
    fn entity_aliases_resolve() {
        for e in ["metric", "metrics", "METRICS"] {
            assert_eq!(runs(&format!("{e}.m > 1")), num(M, "m", Op::Gt, 1.0));
        }
        for e in ["parameter", "parameters", "param", "params"] {
            assert_eq!(runs(&format!("{e}.p = 'v'")), string(P, "p", Op::Eq, "v"));
        }
        for e in ["tag", "tags"] {
            assert_eq!(runs(&format!("{e}.t = 'v'")), string(T, "t", Op::Eq, "v"));
        }
        for e in ["attribute", "attributes", "attr", "run"] {
            assert_eq!(
                runs(&format!("{e}.status = 'FINISHED'")),
                string(A, "status", Op::Eq, "FINISHED")
            );
        }
        for e in ["dataset", "datasets"] {
            assert_eq!(
                runs(&format!("{e}.name = 'd'")),
                string(D, "name", Op::Eq, "d")
            );
        }
    }

    #[test]
    fn attribute_aliases_are_canonicalised() {
        for alias in ["created", "Created", "start_time"] {
            assert_eq!(
                runs(&format!("{alias} >= 5")),
                num(A, "start_time", Op::Ge, 5.0)
            );
        }
        for alias in [
            "`run name`",
            "`Run name`",
            "\"Run Name\"",
            "attributes.`Run name`",
        ] {
            assert_eq!(
                runs(&format!("{alias} = 'r'")),
                string(A, "run_name", Op::Eq, "r")
            );
        }
        let lm = |t: &str| parse(SearchKind::LoggedModels, t);
        assert_eq!(
            lm("creation_time > 1"),
            num(A, "creation_timestamp", Op::Gt, 1.0)
        );
        assert_eq!(
            lm("last_updated_time > 1"),
            num(A, "last_updated_timestamp", Op::Gt, 1.0)
        );
    }

    #[test]
    fn experiments_filters() {
        let ex = |t: &str| parse(SearchKind::Experiments, t);
        assert_eq!(ex("name LIKE 'a%'"), string(A, "name", Op::Like, "a%"));
        assert_eq!(
            ex("attribute.experiment_id IN ('1', '2')"),
            list(A, "experiment_id", Op::In, &["1", "2"])
        );
        assert_eq!(
            ex("creation_time > 5"),
            num(A, "creation_time", Op::Gt, 5.0)
        );
        assert_eq!(
            ex("last_update_time <= 5"),
            num(A, "last_update_time", Op::Le, 5.0)
        );
        assert_eq!(ex("tags.k IS NULL"), cmp(T, "k", Op::IsNull, Value::None));
        error(
            SearchKind::Experiments,
            "name IN ('a')",
            &[
                "Only ['experiment_id'] attributes support comparison with a list of quoted string values.",
                "token 'IN' at position 5",
            ],
        );
        error(
            SearchKind::Experiments,
            "metrics.a > 1",
            &[
                "Invalid entity type 'metrics'. Valid entity types are ('attribute', 'attributes', 'tag', 'tags')",
                "token 'metrics' at position 0",
            ],
        );
        error(
            SearchKind::Experiments,
            "run_id = 'x'",
            &[
                "Invalid attribute key 'run_id' specified",
                "token 'run_id' at position 0",
            ],
        );
    }

    #[test]
    fn registered_model_filters() {
        let rm = |t: &str| parse(SearchKind::RegisteredModels, t);
        assert_eq!(rm("name = 'm'"), string(A, "name", Op::Eq, "m"));
        assert_eq!(rm("name NOT IN ('m')"), list(A, "name", Op::NotIn, &["m"]));
        assert_eq!(
            rm("tags.`mlflow.prompt.is_prompt` != 'true'"),
            string(T, "mlflow.prompt.is_prompt", Op::Ne, "true")
        );
        error(
            SearchKind::RegisteredModels,
            "tags.k IS NULL",
            &[
                "IS NULL / IS NOT NULL is not supported for registered model search.",
                "token 'IS NULL' at position 7",
            ],
        );
        error(
            SearchKind::RegisteredModels,
            "creation_timestamp > 1",
            &["Invalid attribute key 'creation_timestamp' specified"],
        );
    }

    #[test]
    fn model_version_filters() {
        let mv = |t: &str| parse(SearchKind::ModelVersions, t);
        assert_eq!(mv("run_id IN ('a')"), list(A, "run_id", Op::In, &["a"]));
        assert_eq!(mv("name IN ('a')"), list(A, "name", Op::In, &["a"]));
        assert_eq!(
            mv("source_path LIKE 's3://%'"),
            string(A, "source_path", Op::Like, "s3://%")
        );
        assert_eq!(
            mv("version_number >= 3"),
            num(A, "version_number", Op::Ge, 3.0)
        );
        assert_eq!(mv("tags.t ILIKE 'x'"), string(T, "t", Op::ILike, "x"));
        error(
            SearchKind::ModelVersions,
            "version_number = 1.5",
            &[
                "Expected an integer value for numeric attribute: version_number. Found 1.5",
                "position 17",
            ],
        );
        error(
            SearchKind::ModelVersions,
            "source_path IN ('a')",
            &[
                "Only ['name', 'run_id'] attributes support comparison with a list of quoted string values.",
            ],
        );
        error(
            SearchKind::ModelVersions,
            "tags.t IS NOT NULL",
            &["IS NULL / IS NOT NULL is not supported for model version search."],
        );
    }

    #[test]
    fn logged_model_filters() {
        let lm = |t: &str| parse(SearchKind::LoggedModels, t);
        for attr in ["name", "model_id", "model_type", "status", "source_run_id"] {
            assert_eq!(lm(&format!("{attr} = 'x'")), string(A, attr, Op::Eq, "x"));
        }
        assert_eq!(lm("metrics.acc >= 0.9"), num(M, "acc", Op::Ge, 0.9));
        assert_eq!(lm("params.lr = '0.1'"), string(P, "lr", Op::Eq, "0.1"));
        assert_eq!(lm("tags.t LIKE 'x%'"), string(T, "t", Op::Like, "x%"));
        error(
            SearchKind::LoggedModels,
            "name IN ('a')",
            &[
                "Invalid comparator 'IN' not one of",
                "token 'IN' at position 5",
            ],
        );
        error(
            SearchKind::LoggedModels,
            "tags.t IS NULL",
            &["Invalid comparator 'IS NULL' not one of"],
        );
        error(
            SearchKind::LoggedModels,
            "datasets.name = 'a'",
            &["Invalid entity type 'datasets'"],
        );
    }

    #[test]
    fn syntax_errors_name_position_and_token() {
        assert_eq!(
            error(SearchKind::Runs, "metrics.a >> 1", &[]),
            "Invalid filter 'metrics.a >> 1': unexpected token '>' at position 11, expected a quoted string or a number"
        );
        error(
            SearchKind::Runs,
            "metrics.a > 1 AND",
            &[
                "unexpected end of input at position 17",
                "expected a comparison or '('",
            ],
        );
        error(
            SearchKind::Runs,
            "(metrics.a > 1",
            &[
                "unexpected end of input at position 14",
                "expected AND, OR or ')'",
            ],
        );
        error(
            SearchKind::Runs,
            "metrics.a > 1)",
            &["unexpected token ')' at position 13"],
        );
        error(
            SearchKind::Runs,
            "metrics.a > 1 metrics.b > 1",
            &[
                "unexpected token 'metrics.b' at position 14",
                "expected AND, OR or the end of the filter",
            ],
        );
        error(
            SearchKind::Runs,
            "params.p = 'open",
            &["unterminated quoted text ''open' at position 11"],
        );
        error(
            SearchKind::Runs,
            "metrics.a 1",
            &[
                "unexpected token '1' at position 10",
                "expected a comparator",
            ],
        );
        error(
            SearchKind::Runs,
            "metrics.a <> 1",
            &["unexpected token '>' at position 11"],
        );
        error(
            SearchKind::Runs,
            "run_id NOT LIKE 'a'",
            &["unexpected token 'LIKE' at position 11", "expected IN"],
        );
        error(
            SearchKind::Runs,
            "run_id IN 'a'",
            &["unexpected token ''a'' at position 10", "expected '('"],
        );
        error(
            SearchKind::Runs,
            "run_id IN ('a' 'b')",
            &[
                "unexpected token ''b'' at position 15",
                "expected ',' or ')'",
            ],
        );
        error(
            SearchKind::Runs,
            "NOT metrics.a > 1",
            &["unexpected token 'metrics.a' at position 4"],
        );
        error(
            SearchKind::Runs,
            "= 1",
            &[
                "unexpected token '=' at position 0",
                "expected a comparison or '('",
            ],
        );
        error(
            SearchKind::Runs,
            "tags.",
            &[
                "unexpected end of input at position 5",
                "expected a key after '.'",
            ],
        );
        error(
            SearchKind::Runs,
            "tags.my-tag = 'x'",
            &[
                "unexpected token '-' at position 7",
                "expected a comparator",
            ],
        );
    }

    #[test]
    fn semantic_errors_use_mlflow_wording_with_position_and_token() {
        let runs_err = |text: &str, parts: &[&str]| error(SearchKind::Runs, text, parts);
        runs_err(
            "foo.a = 'x'",
            &[
                "Invalid entity type 'foo'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']",
                "token 'foo' at position 0",
            ],
        );
        runs_err(
            "lifecycle_stage = 'active'",
            &[
                "Invalid attribute key 'lifecycle_stage' specified. Valid keys are",
                "token 'lifecycle_stage' at position 0",
            ],
        );
        runs_err(
            "datasets.schema = 'x'",
            &[
                "Invalid dataset key 'schema' specified. Valid keys are '['name', 'digest', 'context']'",
                "token 'schema' at position 9",
            ],
        );
        runs_err(
            "metrics.a LIKE '1'",
            &[
                "Invalid comparator 'LIKE' not one of '{'>', '>=', '!=', '=', '<', '<='}'",
                "token 'LIKE' at position 10",
            ],
        );
        runs_err(
            "metrics.a IS NULL",
            &[
                "Invalid comparator 'IS NULL' not one of",
                "token 'IS NULL' at position 10",
            ],
        );
        runs_err(
            "params.p > 'a'",
            &[
                "Invalid comparator '>' not one of",
                "token '>' at position 9",
            ],
        );
        runs_err(
            "start_time LIKE 'a'",
            &["Invalid comparator 'LIKE' not one of"],
        );
        runs_err(
            "run_name IN ('a')",
            &[
                "Only ['run_id'] attributes support comparison with a list of quoted string values.",
                "token 'IN' at position 9",
            ],
        );
        runs_err(
            "run_id IN ()",
            &[
                "While parsing a list in the query, expected a non-empty list of string values, but got empty list",
                "token '()' at position 10",
            ],
        );
        runs_err(
            "run_id IN ('a', 1)",
            &[
                "While parsing a list in the query, expected string value, punctuation, or whitespace, but got different type in list: ('a', 1)",
                "token '1' at position 16",
            ],
        );
        runs_err(
            "params.p = abc",
            &[
                "Parameter value is either not quoted or unidentified quote types used for string value abc. Use either single or double quotes.",
                "token 'abc' at position 11",
            ],
        );
        runs_err(
            "params.p = 1",
            &[
                "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 1",
                "token '1' at position 11",
            ],
        );
        runs_err(
            "tags.t = 2",
            &["Expected a quoted string value for tag (e.g. 'my-value'). Got value 2"],
        );
        runs_err(
            "status = 3",
            &["Expected a quoted string value for attributes. Got value 3"],
        );
        runs_err(
            "datasets.name = 3",
            &["Expected a quoted string value for dataset attributes. Got value 3"],
        );
        runs_err(
            "metrics.a = 'x'",
            &[
                "Expected numeric value type for metric. Found 'x'",
                "token ''x'' at position 12",
            ],
        );
        runs_err(
            "metrics.a = 1abc",
            &["Expected numeric value type for metric. Found 1abc"],
        );
        runs_err(
            "start_time > '5'",
            &["Expected numeric value type for numeric attribute: start_time. Found '5'"],
        );
        runs_err(
            "metrics.a > 1e999",
            &["out of range", "token '1e999' at position 12"],
        );
    }

    #[test]
    fn order_by_parses_keys_directions_and_aliases() {
        assert_eq!(
            order(
                SearchKind::Runs,
                &[
                    "metrics.m",
                    "params.p DESC",
                    " tags.`a b`  asc ",
                    "created desc",
                    "`Run name`"
                ]
            ),
            vec![
                ob(M, "m", true),
                ob(P, "p", false),
                ob(T, "a b", true),
                ob(A, "start_time", false),
                ob(A, "run_name", true),
            ]
        );
        for attr in [
            "run_id",
            "run_name",
            "user_id",
            "status",
            "start_time",
            "end_time",
            "artifact_uri",
        ] {
            assert_eq!(
                order(SearchKind::Runs, &[&format!("attributes.{attr} DESC")]),
                vec![ob(A, attr, false)]
            );
        }
        assert_eq!(
            order(
                SearchKind::Experiments,
                &[
                    "name",
                    "experiment_id DESC",
                    "creation_time",
                    "last_update_time"
                ]
            ),
            vec![
                ob(A, "name", true),
                ob(A, "experiment_id", false),
                ob(A, "creation_time", true),
                ob(A, "last_update_time", true),
            ]
        );
        assert_eq!(
            order(SearchKind::RegisteredModels, &["timestamp DESC", "name"]),
            vec![ob(A, "last_updated_timestamp", false), ob(A, "name", true)]
        );
        assert_eq!(
            order(SearchKind::RegisteredModels, &["creation_timestamp"]),
            vec![ob(A, "creation_timestamp", true)]
        );
        assert_eq!(
            order(
                SearchKind::ModelVersions,
                &["version_number DESC", "last_updated_timestamp"]
            ),
            vec![
                ob(A, "version_number", false),
                ob(A, "last_updated_timestamp", true)
            ]
        );
        assert_eq!(
            order(
                SearchKind::LoggedModels,
                &["creation_time", "metrics.acc DESC"]
            ),
            vec![ob(A, "creation_timestamp", true), ob(M, "acc", false)]
        );
        assert_eq!(order(SearchKind::Runs, &[]), vec![]);
    }

    #[test]
    fn order_by_errors() {
        order_error(
            SearchKind::Runs,
            &["name DESC extra"],
            &[
                "Invalid order_by clause 'name DESC extra'. Could not be parsed",
                "unexpected token 'extra' at position 10",
            ],
        );
        order_error(
            SearchKind::Runs,
            &[""],
            &[
                "Invalid order_by clause ''. Could not be parsed",
                "unexpected end of input at position 0",
            ],
        );
        order_error(
            SearchKind::Runs,
            &["metrics.m, params.p"],
            &["Could not be parsed", "unexpected token ',' at position 9"],
        );
        order_error(
            SearchKind::Runs,
            &["metrics.m sideways"],
            &[
                "Invalid ordering key in order_by clause 'metrics.m sideways'.",
                "token 'sideways' at position 10",
            ],
        );
        order_error(
            SearchKind::Runs,
            &["datasets.name"],
            &[
                "Invalid order_by entity: dataset",
                "token 'datasets' at position 0",
            ],
        );
        order_error(
            SearchKind::Runs,
            &["lifecycle_stage"],
            &["Invalid attribute key 'lifecycle_stage' specified"],
        );
        order_error(
            SearchKind::Experiments,
            &["tags.t"],
            &["Invalid order_by entity: tag", "token 'tags' at position 0"],
        );
        order_error(
            SearchKind::RegisteredModels,
            &["version_number"],
            &["Invalid order by key 'version_number' specified"],
        );
        order_error(
            SearchKind::RegisteredModels,
            &["name", "timestamp", "last_updated_timestamp DESC"],
            &[
                "`order_by` contains duplicate fields: ['name', 'timestamp', 'last_updated_timestamp DESC']",
                "token 'last_updated_timestamp' at position 0",
            ],
        );
        order_error(
            SearchKind::LoggedModels,
            &["params.p"],
            &["Invalid order by field name: parameter, only `metrics.<name>` is allowed."],
        );
        order_error(
            SearchKind::LoggedModels,
            &["foo.p"],
            &["Invalid order by field name: foo, only `metrics.<name>` is allowed."],
        );
        order_error(
            SearchKind::LoggedModels,
            &["size"],
            &["Invalid order by field name: size."],
        );
    }
}
