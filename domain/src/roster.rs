//! Roster import: the member spreadsheets village committees keep, saved as CSV. Chinese headers
//! as they are written in the villages (English ones too), UTF-8 with or without a BOM. Every row
//! is validated and every error carries its line; the caller writes nothing unless all rows pass.

use crate::error::{Error, FieldError};
use crate::member::{
    check_join_date, check_residence, parse_name, MemberFields, MemberStatus, Phone, Residence,
};
use chrono::NaiveDate;
use std::collections::HashMap;

/// The most rows one import takes; a township splits larger files.
pub const MAX_ROWS: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Column {
    Name,
    Phone,
    Status,
    JoinDate,
    Residence,
    MigrantCity,
    Elderly,
    CentralHousehold,
    Group,
}

impl Column {
    fn field(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Phone => "phone",
            Column::Status => "status",
            Column::JoinDate => "join_date",
            Column::Residence => "residence",
            Column::MigrantCity => "migrant_city",
            Column::Elderly => "elderly_or_infirm",
            Column::CentralHousehold => "central_household",
            Column::Group => "group",
        }
    }

    fn from_header(h: &str) -> Option<Column> {
        let h: String = h.trim().chars().filter(|c| !c.is_whitespace()).collect();
        Some(match h.to_lowercase().as_str() {
            "姓名" | "党员姓名" | "name" => Column::Name,
            "手机号" | "手机号码" | "手机" | "联系电话" | "电话" | "联系方式" | "phone" => {
                Column::Phone
            }
            "党员类别" | "党员状态" | "类别" | "人员类别" | "党员身份" | "status" => {
                Column::Status
            }
            "入党时间" | "入党日期" | "入党年月" | "政治生日" | "join_date" => {
                Column::JoinDate
            }
            "居住情况" | "是否外出" | "流动情况" | "在家/外出" | "residence" => {
                Column::Residence
            }
            "外出地" | "外出地点" | "务工城市" | "外出城市" | "所在城市" | "migrant_city" => {
                Column::MigrantCity
            }
            "年老体弱" | "是否年老体弱" | "elderly_or_infirm" => Column::Elderly,
            "党员中心户" | "是否党员中心户" | "central_household" => {
                Column::CentralHousehold
            }
            "党小组" | "所在党小组" | "group" => Column::Group,
            _ => return None,
        })
    }
}

/// One valid row of a roster.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// The 1-based line of the file the row starts on (the header is line 1).
    pub line: u64,
    pub member: MemberFields,
    /// The party group named in the row, to be found under the importing branch.
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Roster {
    pub rows: Vec<RosterRow>,
    /// Headers that map to no member field (序号, 性别, 备注...): kept out, reported back.
    pub ignored_columns: Vec<String>,
}

/// The result of reading a file: the valid rows and, separately, every row error.
#[derive(Debug)]
pub struct Parsed {
    pub roster: Roster,
    pub errors: Vec<FieldError>,
}

/// Reads a roster file. A file that cannot be read as a roster at all (not UTF-8, no header for
/// name or phone, too many rows) is an `Unprocessable` error; row problems come back in
/// `Parsed::errors`, each with its line.
pub fn parse(bytes: &[u8], today: NaiveDate) -> Result<Parsed, Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if std::str::from_utf8(bytes).is_err() {
        return Err(Error::Unprocessable("csv_not_utf8"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|_| Error::Unprocessable("csv_malformed"))?
        .clone();
    let mut columns: HashMap<Column, usize> = HashMap::new();
    let mut ignored_columns = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        match Column::from_header(h) {
            Some(c) if columns.contains_key(&c) => {
                return Err(Error::Invalid(vec![FieldError::new(
                    c.field(),
                    "csv_duplicate_header",
                )
                .at_line(1)]))
            }
            Some(c) => {
                columns.insert(c, i);
            }
            None if h.trim().is_empty() => {}
            None => ignored_columns.push(h.trim().to_string()),
        }
    }
    let missing: Vec<FieldError> = [Column::Name, Column::Phone]
        .into_iter()
        .filter(|c| !columns.contains_key(c))
        .map(|c| FieldError::new(c.field(), "csv_header_missing").at_line(1))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(missing));
    }

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen_phones: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| physical_line(bytes, p.byte()));
                errors.push(FieldError::new("row", "csv_malformed").at_line(line));
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| physical_line(bytes, p.byte()));
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // spreadsheets end with blank lines
        }
        if rows.len() + errors.len() >= MAX_ROWS {
            return Err(Error::Unprocessable("csv_too_many_rows"));
        }
        let cell =
            |c: Column| unneutralise(columns.get(&c).and_then(|&i| record.get(i)).unwrap_or(""));
        match parse_row(&cell, columns.contains_key(&Column::Status), today) {
            Ok((member, group)) => {
                if let Some(first) = seen_phones.insert(member.phone.as_str().to_string(), line) {
                    seen_phones.insert(member.phone.as_str().to_string(), first);
                    errors.push(FieldError::new("phone", "duplicate_phone_in_file").at_line(line));
                } else {
                    rows.push(RosterRow {
                        line,
                        member,
                        group,
                    });
                }
            }
            Err(es) => errors.extend(es.into_iter().map(|e| e.at_line(line))),
        }
    }
    Ok(Parsed {
        roster: Roster {
            rows,
            ignored_columns,
        },
        errors,
    })
}

/// The 1-based line of the file on which the record starting at `byte` begins, counting every
/// line break (CRLF or LF, inside quoted fields too), as a spreadsheet user counts them.
fn physical_line(bytes: &[u8], byte: u64) -> u64 {
    // The reader may place a record at the line break that ended the one before (the `\n` of
    // a CRLF): a record starts at its first character.
    let mut start = (byte as usize).min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

fn parse_row<'r>(
    cell: &dyn Fn(Column) -> &'r str,
    has_status: bool,
    today: NaiveDate,
) -> Result<(MemberFields, Option<String>), Vec<FieldError>> {
    let mut errs = Vec::new();
    let name = parse_name(cell(Column::Name))
        .map_err(|e| errs.push(e))
        .ok();
    let phone = Phone::parse(cell(Column::Phone))
        .map_err(|e| errs.push(e))
        .ok();
    let status = if has_status {
        parse_status(cell(Column::Status))
            .map_err(|e| errs.push(e))
            .ok()
    } else {
        Some(MemberStatus::Full)
    };
    let join_date = match cell(Column::JoinDate).trim() {
        "" => Some(None),
        raw => parse_date(raw)
            .ok_or_else(|| FieldError::new("join_date", "invalid_date"))
            .and_then(|d| check_join_date(d, today))
            .map(Some)
            .map_err(|e| errs.push(e))
            .ok(),
    };
    let residence = parse_residence(cell(Column::Residence))
        .map_err(|e| errs.push(e))
        .ok();
    let city = residence.and_then(|r| {
        let raw = cell(Column::MigrantCity);
        check_residence(r, Some(raw)).map_err(|e| errs.push(e)).ok()
    });
    let elderly = parse_flag(cell(Column::Elderly), Column::Elderly)
        .map_err(|e| errs.push(e))
        .ok();
    let central = parse_flag(cell(Column::CentralHousehold), Column::CentralHousehold)
        .map_err(|e| errs.push(e))
        .ok();
    let group = crate::text::clean_opt(
        "group",
        Some(cell(Column::Group)),
        crate::text::Kind::Line,
        100,
    )
    .map_err(|e| errs.push(e))
    .ok()
    .flatten();
    match (
        name, phone, status, join_date, residence, city, elderly, central,
    ) {
        (
            Some(name),
            Some(phone),
            Some(status),
            Some(join_date),
            Some(residence),
            Some(migrant_city),
            Some(elderly_or_infirm),
            Some(central_household),
        ) if errs.is_empty() => Ok((
            MemberFields {
                name,
                phone,
                status,
                join_date,
                residence,
                migrant_city,
                elderly_or_infirm,
                central_household,
            },
            group,
        )),
        _ => Err(errs),
    }
}

/// The leading characters a spreadsheet reads as a formula (OWASP's CSV injection list).
fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// A cell as exported: one that a spreadsheet would run as a formula gets a leading `'`.
pub fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some(c) if is_formula_start(c) => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// A cell as imported: the `'` an export put before a formula-like cell is taken off again.
fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.chars().next().is_some_and(is_formula_start) => rest,
        _ => cell,
    }
}

/// One member as an exported roster row: the columns `parse` reads back.
pub struct ExportRow<'a> {
    pub member: &'a MemberFields,
    pub group: Option<&'a str>,
}

/// The roster as a CSV file with the headers villages use (UTF-8 with a BOM, so spreadsheet
/// programs on Windows read the Chinese right), every cell neutralised; `parse` reads it back.
pub fn export(rows: &[ExportRow<'_>]) -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let internal = |e: csv::Error| Error::Internal(format!("csv: {e}"));
    w.write_record([
        "姓名",
        "手机号",
        "党员类别",
        "入党时间",
        "居住情况",
        "外出地",
        "年老体弱",
        "党员中心户",
        "党小组",
    ])
    .map_err(internal)?;
    let yes_no = |b: bool| if b { "是" } else { "否" };
    for r in rows {
        let m = r.member;
        let record = [
            neutralise(&m.name),
            m.phone.as_str().to_string(),
            match m.status {
                MemberStatus::Full => "正式党员",
                MemberStatus::Probationary => "预备党员",
            }
            .to_string(),
            m.join_date.map(|d| d.to_string()).unwrap_or_default(),
            match m.residence {
                Residence::AtHome => "在家",
                Residence::Migrant => "外出",
            }
            .to_string(),
            neutralise(m.migrant_city.as_deref().unwrap_or("")),
            yes_no(m.elderly_or_infirm).to_string(),
            yes_no(m.central_household).to_string(),
            neutralise(r.group.unwrap_or("")),
        ];
        w.write_record(&record).map_err(internal)?;
    }
    w.into_inner()
        .map_err(|e| Error::Internal(format!("csv: {e}")))
}

fn parse_status(raw: &str) -> Result<MemberStatus, FieldError> {
    match raw.trim() {
        "正式党员" | "正式" | "full" => Ok(MemberStatus::Full),
        "预备党员" | "预备" | "probationary" => Ok(MemberStatus::Probationary),
        "" => Err(FieldError::new("status", "required")),
        _ => Err(FieldError::new("status", "invalid_status")),
    }
}

fn parse_residence(raw: &str) -> Result<Residence, FieldError> {
    match raw.trim() {
        "" | "在家" | "在村" | "否" | "at_home" => Ok(Residence::AtHome),
        "外出" | "外出务工" | "流动" | "流动党员" | "是" | "migrant" => {
            Ok(Residence::Migrant)
        }
        _ => Err(FieldError::new("residence", "invalid_residence")),
    }
}

fn parse_flag(raw: &str, column: Column) -> Result<bool, FieldError> {
    match raw.trim().to_lowercase().as_str() {
        "" | "否" | "无" | "n" | "no" | "false" | "0" => Ok(false),
        "是" | "有" | "√" | "y" | "yes" | "true" | "1" => Ok(true),
        _ => Err(FieldError::new(column.field(), "invalid_flag")),
    }
}

/// Dates as spreadsheets write them: 2001-07-01, 2001/7/1, 2001.7.1, 2001年7月1日, 20010701,
/// and a bare month (2001-07, 2001年7月) meaning its first day.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim().trim_end_matches('日');
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    }
    let parts: Vec<&str> = s
        .split(['-', '/', '.', '年', '月'])
        .filter(|p| !p.is_empty())
        .collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    match parts.len() {
        2 => NaiveDate::from_ymd_opt(num(0)? as i32, num(1)?, 1),
        3 => NaiveDate::from_ymd_opt(num(0)? as i32, num(1)?, num(2)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
    }

    #[test]
    fn an_export_neutralises_formulas_and_reads_back_as_it_was() {
        let m = |name: &str, city: Option<&str>| MemberFields {
            name: name.into(),
            phone: Phone::parse("13800138000").unwrap_or_else(|_| unreachable!()),
            status: MemberStatus::Probationary,
            join_date: NaiveDate::from_ymd_opt(2001, 7, 1),
            residence: if city.is_some() {
                Residence::Migrant
            } else {
                Residence::AtHome
            },
            migrant_city: city.map(String::from),
            elderly_or_infirm: true,
            central_household: false,
        };
        let a = m("=HYPERLINK(\"http://x\")", Some("@杭州"));
        let mut b = m("-张三", None);
        b.phone = Phone::parse("13900139000").unwrap_or_else(|_| unreachable!());
        let bytes = export(&[
            ExportRow {
                member: &a,
                group: Some("+一组"),
            },
            ExportRow {
                member: &b,
                group: None,
            },
        ])
        .unwrap_or_default();
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        for line in text.lines().skip(1) {
            for cell in line.split(',') {
                let cell = cell.trim_start_matches('"');
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{line}");
            }
        }
        let back = parse(&bytes, today()).expect("reads back");
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.roster.rows[0].member, a);
        assert_eq!(back.roster.rows[0].group.as_deref(), Some("+一组"));
        assert_eq!(back.roster.rows[1].member, b);
    }

    #[test]
    fn reads_a_village_roster_with_bom_and_extra_columns() {
        let csv = "\u{feff}序号,姓名,性别,手机号码,党员类别,入党时间,居住情况,外出地,年老体弱,党员中心户\n\
                   1,张三,男,138 0013 8000,正式党员,1998年7月1日,在家,,否,是\n\
                   2,李四,女,13900139000,预备党员,2025/3/5,外出务工,杭州,,\n\n";
        let parsed = parse(csv.as_bytes(), today()).expect("parses");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.roster.rows.len(), 2);
        assert_eq!(parsed.roster.ignored_columns, vec!["序号", "性别"]);
        let li = &parsed.roster.rows[1];
        assert_eq!(li.line, 3);
        assert_eq!(li.member.status, MemberStatus::Probationary);
        assert_eq!(li.member.residence, Residence::Migrant);
        assert_eq!(li.member.migrant_city.as_deref(), Some("杭州"));
        assert!(parsed.roster.rows[0].member.central_household);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = "姓名,手机号,入党时间,居住情况\n\
                   张三,13800138000,1998-07-01,在家\n\
                   ,123,2099-01-01,外出\n\
                   王五,13800138000,,在家\n";
        let parsed = parse(csv.as_bytes(), today()).expect("parses");
        let got: Vec<(u64, &str, &str)> = parsed
            .errors
            .iter()
            .map(|e| (e.line.unwrap_or(0), e.field.as_str(), e.code))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "name", "required"),
                (3, "phone", "invalid_phone"),
                (3, "join_date", "out_of_range"),
                (3, "migrant_city", "required"),
                (4, "phone", "duplicate_phone_in_file"),
            ]
        );
    }

    #[test]
    fn a_file_without_a_phone_column_or_not_in_utf8_is_refused_whole() {
        let err = parse("姓名,性别\n张三,男\n".as_bytes(), today()).err();
        assert!(matches!(err, Some(Error::Invalid(ref e)) if e[0].code == "csv_header_missing"));
        // "姓名" in GBK
        let err = parse(&[0xD0, 0xD5, 0xC3, 0xFB, b'\n'], today()).err();
        assert!(matches!(err, Some(Error::Unprocessable("csv_not_utf8"))));
    }

    #[test]
    fn dates_in_village_spellings() {
        let d = NaiveDate::from_ymd_opt(2001, 7, 1);
        for s in [
            "2001-07-01",
            "2001/7/1",
            "2001.7.1",
            "2001年7月1日",
            "20010701",
            "2001年7月",
        ] {
            assert_eq!(parse_date(s), d, "{s}");
        }
        assert_eq!(parse_date("2001-13-01"), None);
    }
}
