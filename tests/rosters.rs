//! Roster spreadsheets as village committees write them, shared by the tests and the benches.

/// A roster of `n` members as a village committee writes it: Chinese headers, a BOM, extra
/// columns, mixed date spellings, some migrant members.
pub fn roster_csv(n: usize, first_phone: u64) -> String {
    let mut s = String::from(
        "\u{feff}序号,姓名,性别,手机号码,党员类别,入党时间,居住情况,外出地,年老体弱,党员中心户\n",
    );
    for i in 0..n {
        let migrant = i % 5 == 0;
        s.push_str(&format!(
            "{},党员{:02},{},{},{},{},{},{},{},{}\n",
            i + 1,
            i + 1,
            if i % 2 == 0 { "男" } else { "女" },
            first_phone + i as u64,
            if i % 7 == 0 {
                "预备党员"
            } else {
                "正式党员"
            },
            if i % 2 == 0 {
                format!("{}年7月1日", 1980 + i % 40)
            } else {
                format!("{}/3/15", 1980 + i % 40)
            },
            if migrant { "外出" } else { "在家" },
            if migrant { "杭州" } else { "" },
            if i % 9 == 0 { "是" } else { "否" },
            if i % 10 == 0 { "是" } else { "" },
        ));
    }
    s
}
