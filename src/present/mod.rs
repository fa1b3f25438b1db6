//! The presentation floor: the document of a run (`summary`), Markdown, the reports folder, the
//! HTML report and notifications.

pub mod html_report;
pub mod markdown;
pub mod notify;
pub mod reports;
pub mod summary;
