//! Reading many rows cheaply on both engines: `within`, a `column IN (ids)` written once for any
//! number of ids, and `load!`, which reads a query's rows on SQLite straight from its statement.

use chrono::NaiveDateTime;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bool, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

/// `column IN (ids)` as one bound parameter: `= ANY($1)` with an array on PostgreSQL, and
/// `IN (SELECT value FROM json_each(?))` with a JSON array on SQLite. diesel's `eq_any` binds
/// one parameter per id on SQLite, so its statement differs with every count of ids and is
/// parsed and planned afresh on every run (4 % of a pull's instructions, callgrind); this one is
/// the same statement for any count, prepared once per connection on both engines. SQLite
/// still looks each id up by the column's index (`SEARCH ... USING INDEX (id=?)` over the
/// `json_each` list).
#[derive(Debug, Clone)]
pub struct Within<C> {
    column: C,
    ids: Vec<String>,
    json: String,
}

/// `column IN (ids)`, for a text column (ids, phones, scope names, periods).
pub fn within<C, S: AsRef<str>>(column: C, ids: &[S]) -> Within<C>
where
    C: Expression<SqlType = Text>,
{
    let ids: Vec<String> = ids.iter().map(|s| s.as_ref().to_string()).collect();
    // A list of strings always serialises.
    let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    Within { column, ids, json }
}

impl<C: Expression> Expression for Within<C> {
    type SqlType = Bool;
}

impl<C, GB> ValidGrouping<GB> for Within<C>
where
    C: ValidGrouping<GB>,
{
    type IsAggregate = C::IsAggregate;
}

impl<C, QS> AppearsOnTable<QS> for Within<C> where C: AppearsOnTable<QS> + Expression {}

impl<C, QS> SelectableExpression<QS> for Within<C> where C: SelectableExpression<QS> + Expression {}

/// Its statement is the same for any list, so its id is static when the column's is.
pub struct WithinId<C>(std::marker::PhantomData<C>);

impl<C: QueryId> QueryId for Within<C> {
    type QueryId = WithinId<C::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = C::HAS_STATIC_QUERY_ID;
}

impl<C: QueryFragment<Pg>> QueryFragment<Pg> for Within<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<C: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Within<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, _>(&self.json)?;
        out.push_sql("))");
        Ok(())
    }
}

/// Loads the rows of `$query` (built for each engine, so `as_select()` fits both): on
/// PostgreSQL as any query; on SQLite through diesel's own connection, which decodes each row
/// from the statement as it steps, where the async wrapper copies every value of every row
/// first (`sqlite3_value_dup`, a `malloc` each: 18 % of a pull's instructions, callgrind). The
/// query must own what it binds (the statement runs on the connection's own terms, see
/// `SyncConnectionWrapper::spawn_blocking`, which with [`super::Inline`] runs it right here).
#[macro_export]
macro_rules! load {
    ($conn:expr, $query:expr) => {
        match &mut ($conn).raw {
            $crate::db::Raw::Pg(inner) => diesel_async::RunQueryDsl::load($query, inner).await,
            $crate::db::Raw::Sqlite(inner) => {
                let query = $query;
                inner
                    .spawn_blocking(move |c| diesel::RunQueryDsl::load(query, c))
                    .await
            }
        }
    };
}

/// A timestamp column decoded fast on SQLite: the text this server writes (`YYYY-MM-DD
/// HH:MM:SS` and up to nine digits of fraction) is read digit by digit; anything else goes
/// to diesel's own parser, which tries eighteen `strftime` formats, each parsed from its
/// format string first (7.6 % of a pull's instructions, callgrind, for two timestamps a row).
/// For a row struct's field: `#[diesel(deserialize_as = Ts)] created_at: NaiveDateTime`.
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct Ts(pub NaiveDateTime);

impl From<Ts> for NaiveDateTime {
    fn from(t: Ts) -> Self {
        t.0
    }
}

impl FromSql<Timestamp, Pg> for Ts {
    fn from_sql(
        bytes: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(bytes).map(Ts)
    }
}

impl FromSql<Timestamp, Sqlite> for Ts {
    fn from_sql(
        mut value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        match parse_timestamp(value.read_text().as_bytes()) {
            Some(t) => Ok(Ts(t)),
            None => <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Ts),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,9}]` (or a `T` between date and time), nothing else.
fn parse_timestamp(s: &[u8]) -> Option<NaiveDateTime> {
    fn num(s: &[u8]) -> Option<u32> {
        s.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    }
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !(s[10] == b' ' || s[10] == b'T')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let nanos = match &s[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(num(&s[0..4])? as i32, num(&s[5..7])?, num(&s[8..10])?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        num(&s[11..13])?,
        num(&s[14..16])?,
        num(&s[17..19])?,
        nanos,
    )?;
    Some(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;
    use chrono::NaiveDateTime;

    /// Every form diesel writes or SQLite's strftime makes reads as chrono reads it; anything
    /// else is left to diesel's parser.
    #[test]
    fn timestamps_read_as_chrono_reads_them() {
        for text in [
            "2026-12-07 16:50:12",
            "2026-12-07 16:50:12.1",
            "2026-12-07 16:50:12.123",
            "2026-12-07 16:50:12.123456",
            "2026-12-07 16:50:12.123456789",
            "2026-12-07T00:00:00.5",
            "1999-01-31 23:59:59.000",
        ] {
            let chrono = NaiveDateTime::parse_from_str(&text.replace('T', " "), "%F %T%.f")
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parse_timestamp(text.as_bytes()), Some(chrono), "{text}");
        }
        for text in [
            "2026-12-07 16:50",
            "2026-12-07 16:50:12Z",
            "2026-12-07 16:50:12+08:00",
            "2026-12-07 16:50:12.",
            "2026-12-07 16:50:12.1234567890",
            "2026-02-30 10:00:00",
            "2026-12-07 24:00:00",
            "2026-1x-07 10:00:00",
            "",
        ] {
            assert_eq!(parse_timestamp(text.as_bytes()), None, "{text}");
        }
    }
}
