//! Workbooks for the village notice board (`rust_xlsxwriter`): a title row with the branch and
//! period, Chinese headers, A4 landscape, the header row repeated on every printed page.

use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, XlsxError};
use yunlian_domain::Error;

fn failed(e: XlsxError) -> Error {
    Error::Internal(format!("workbook: {e}"))
}

/// A sheet of `rows` under `headers`, titled `title`, as .xlsx bytes. Cells are written as
/// strings or numbers, never as formulas: a name starting with `=` stays a name.
pub fn table(
    title: &str,
    sheet: &str,
    headers: &[&str],
    widths: &[f64],
    rows: &[Vec<Cell>],
) -> Result<Vec<u8>, Error> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(sheet).map_err(failed)?;
    let title_fmt = Format::new()
        .set_bold()
        .set_font_size(16)
        .set_align(FormatAlign::Center);
    let head_fmt = Format::new()
        .set_bold()
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center);
    let cell_fmt = Format::new().set_border(FormatBorder::Thin);
    let last = headers.len().saturating_sub(1) as u16;
    ws.merge_range(0, 0, 0, last, title, &title_fmt)
        .map_err(failed)?;
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(1, c as u16, *h, &head_fmt)
            .map_err(failed)?;
    }
    for (c, w) in widths.iter().enumerate() {
        ws.set_column_width(c as u16, *w).map_err(failed)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 2;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(s) => ws.write_string_with_format(r, c as u16, s, &cell_fmt),
                Cell::Number(n) => ws.write_number_with_format(r, c as u16, *n as f64, &cell_fmt),
            }
            .map_err(failed)?;
        }
    }
    ws.set_landscape();
    ws.set_paper_size(9); // A4
    ws.set_repeat_rows(1, 1).map_err(failed)?;
    wb.save_to_buffer().map_err(failed)
}

/// A cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(i64),
}
