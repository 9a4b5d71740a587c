//! Images on the board: sniffed, bounded, stripped of EXIF, thumbnailed, kept in the object
//! store (a directory, or the S3-compatible server `.ci/run` starts), and served with caching
//! headers only to those who see the branch.

use crate::helpers::{branch_with_members, spawn_app, TestApp};
use image::{DynamicImage, ImageFormat};
use reqwest::StatusCode;
use serde_json::json;
use std::io::Cursor;

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// A phone camera's JPEG: an EXIF segment (APP1) with the GPS point of the villager's home.
fn photo_with_gps(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let plain = encode(DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0MM\0*GPSLatitude 30.89N GPSLongitude 119.41E".to_vec();
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.append(&mut exif);
    out.extend_from_slice(&plain[2..]);
    out
}

async fn upload(
    app: &TestApp,
    token: &str,
    org: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let r = app
        .client
        .post(format!("{}/v1/images?org_id={org}", app.base))
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_photo_is_served_without_its_gps_to_the_branch_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "图片村党支部", 13997000000, 1).await;
    let (_, other_sec, _) = branch_with_members(&app, &admin, "邻村党支部", 13997100000, 1).await;

    // Declared as a PNG, it is a JPEG: the bytes decide.
    let (status, img) = upload(&app, &sec, &branch, "image/png", photo_with_gps(1600, 1200)).await;
    assert_eq!(status, StatusCode::CREATED, "{img:?}");
    assert_eq!(
        (
            img["content_type"].as_str(),
            img["width"].as_i64(),
            img["height"].as_i64()
        ),
        (Some("image/jpeg"), Some(1600), Some(1200))
    );
    let id = img["id"].as_str().expect("id").to_string();

    let get = |token: String, q: &'static str, etag: Option<String>| {
        let (app, id) = (&app, id.clone());
        async move {
            let mut req = app
                .client
                .get(format!("{}/v1/images/{id}{q}", app.base))
                .bearer_auth(token);
            if let Some(e) = etag {
                req = req.header("if-none-match", e);
            }
            req.send().await.expect("get")
        }
    };
    let r = get(members[0].1.clone(), "", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap_or("")
        .contains("immutable"));
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let bytes = r.bytes().await.expect("bytes");
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "EXIF stripped");
    assert!(!bytes.windows(3).any(|w| w == b"GPS"), "no GPS left");
    let full = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!((full.width(), full.height()), (1600, 1200));
    let thumb = get(members[0].1.clone(), "?size=thumb", None)
        .await
        .bytes()
        .await
        .expect("thumb");
    let t = image::load_from_memory(&thumb).expect("thumb decodes");
    assert_eq!((t.width(), t.height()), (320, 240));
    assert_eq!(
        get(members[0].1.clone(), "", Some(etag)).await.status(),
        StatusCode::NOT_MODIFIED
    );
    // Another branch does not see it; a member does not upload.
    assert_eq!(
        get(other_sec.clone(), "", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) = upload(
        &app,
        &members[0].1,
        &branch,
        "image/jpeg",
        photo_with_gps(10, 10),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A topic carries it; another branch's topic cannot.
    let until = chrono::Utc::now() + chrono::TimeDelta::days(3);
    let r = app
        .post("/v1/posts", &sec, json!({"org_id": branch, "title": "新路灯", "body": "看图", "image_ids": [id], "feedback_until": until}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["image_ids"], json!([id]));

    // Not an image, too big, too many pixels, the wrong content type.
    let (status, body) = upload(
        &app,
        &sec,
        &branch,
        "image/jpeg",
        b"%PDF-1.7 not a photo".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_an_image"))
    );
    let (status, body) = upload(
        &app,
        &sec,
        &branch,
        "image/jpeg",
        vec![0xFF; 9 * 1024 * 1024],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("image_too_large"))
    );
    let strip = encode(
        DynamicImage::ImageRgb8(image::RgbImage::new(12_000, 2)),
        ImageFormat::Png,
    );
    let (status, body) = upload(&app, &sec, &branch, "image/png", strip).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("image_too_many_pixels")
        )
    );
    let (status, body) = upload(&app, &sec, &branch, "text/plain", b"hello".to_vec()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    // On the S3 path, the objects are in the bucket under the image's id.
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        let bucket = crate::helpers::S3_BUCKET;
        let list = reqwest::get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=images/{id}/"
        ))
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
        assert!(
            list.contains(&format!("images/{id}/full"))
                && list.contains(&format!("images/{id}/thumb")),
            "{list}"
        );
    }
}
