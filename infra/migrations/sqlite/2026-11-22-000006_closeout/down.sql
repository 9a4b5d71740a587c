DROP TABLE outbox;
DROP TABLE meeting_attendance;
DROP TABLE video_events;
DROP TABLE leave_requests;
