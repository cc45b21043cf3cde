PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_info (
	version INTEGER NOT NULL
);
INSERT INTO schema_info VALUES(1);
INSERT INTO schema_info VALUES(2);
INSERT INTO schema_info VALUES(3);
INSERT INTO schema_info VALUES(4);
INSERT INTO schema_info VALUES(5);
INSERT INTO schema_info VALUES(6);
CREATE TABLE feeds (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	url TEXT NOT NULL, 
	outlet VARCHAR(200) NOT NULL, 
	language VARCHAR(10) NOT NULL, 
	tags TEXT NOT NULL, 
	etag TEXT, 
	last_modified TEXT, 
	last_fetched_at VARCHAR(40), 
	last_status VARCHAR(20), 
	last_error TEXT, 
	consecutive_failures INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	started_at VARCHAR(40) NOT NULL, 
	finished_at VARCHAR(40), 
	status VARCHAR(20) NOT NULL, 
	report TEXT, 
	PRIMARY KEY (id)
);
CREATE TABLE fetches (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	kind VARCHAR(10) NOT NULL, 
	url TEXT NOT NULL, 
	status_code INTEGER, 
	outcome VARCHAR(30) NOT NULL, 
	detail TEXT, 
	bytes INTEGER, 
	duration_ms INTEGER, 
	fetched_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE items (
	id INTEGER NOT NULL, 
	canonical_url TEXT NOT NULL, 
	url TEXT NOT NULL, 
	feed_id INTEGER, 
	title TEXT NOT NULL, 
	summary TEXT NOT NULL, 
	summary_truncated_from INTEGER, 
	published VARCHAR(40), 
	author TEXT NOT NULL, 
	categories TEXT NOT NULL, 
	first_run_id INTEGER, 
	status VARCHAR(20) NOT NULL, 
	attempts INTEGER NOT NULL, 
	last_error TEXT, 
	updated_at VARCHAR(40), 
	PRIMARY KEY (id), 
	UNIQUE (canonical_url), 
	FOREIGN KEY(feed_id) REFERENCES feeds (id), 
	FOREIGN KEY(first_run_id) REFERENCES runs (id)
);
CREATE TABLE pages (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	url TEXT NOT NULL, 
	final_url TEXT NOT NULL, 
	status_code INTEGER NOT NULL, 
	content_type VARCHAR(100), 
	body_zlib BLOB NOT NULL, 
	fetched_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(item_id) REFERENCES items (id)
);
CREATE TABLE articles (
	id INTEGER NOT NULL, 
	item_id INTEGER, 
	source VARCHAR(20) NOT NULL, 
	external_id VARCHAR(200), 
	url TEXT, 
	canonical_url TEXT, 
	outlet VARCHAR(200) NOT NULL, 
	title TEXT NOT NULL, 
	author TEXT NOT NULL, 
	published VARCHAR(40), 
	sitename TEXT NOT NULL, 
	categories TEXT NOT NULL, 
	language VARCHAR(10) NOT NULL, 
	text TEXT NOT NULL, 
	text_truncated_from INTEGER, 
	content_hash VARCHAR(64) NOT NULL, 
	method VARCHAR(30) NOT NULL, 
	run_id INTEGER, 
	created_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_articles_source_external UNIQUE (source, external_id), 
	FOREIGN KEY(item_id) REFERENCES items (id), 
	UNIQUE (canonical_url), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO articles VALUES(1,NULL,'test','park','https://example.org/park','https://example.org/park','Dagblad De Polder','Titel park','','2026-03-10T09:00:00+01:00','','["nieuws"]','nl','Tekst van park. Bewoners denken mee.',NULL,'hash-park','test',NULL,'2026-12-01T13:11:02+00:00');
INSERT INTO articles VALUES(2,NULL,'test','copy','https://example.org/copy','https://example.org/copy','Rivierstad Courant','Titel copy','','2026-03-10T11:00:00+01:00','','["nieuws"]','nl','Tekst van copy. Bewoners denken mee.',NULL,'hash-copy','test',NULL,'2026-12-01T13:11:02+00:00');
INSERT INTO articles VALUES(3,NULL,'test','care','https://example.org/care','https://example.org/care','Zorg Vandaag','Titel care','','2026-03-12T09:00:00+01:00','','["nieuws"]','nl','Tekst van care. Bewoners denken mee.',NULL,'hash-care','test',NULL,'2026-12-01T13:11:02+00:00');
INSERT INTO articles VALUES(4,NULL,'test','road','https://example.org/road','https://example.org/road','Dagblad De Polder','Titel road','','2026-03-11T09:00:00+01:00','','["nieuws"]','nl','Tekst van road. Bewoners denken mee.',NULL,'hash-road','test',NULL,'2026-12-01T13:11:02+00:00');
INSERT INTO articles VALUES(5,NULL,'test','wire','https://example.org/wire','https://example.org/wire','Zorg Vandaag','Titel wire','',NULL,'','["nieuws"]','nl','Tekst van wire. Bewoners denken mee.',NULL,'hash-wire','test',NULL,'2026-12-01T13:11:02+00:00');
INSERT INTO articles VALUES(6,NULL,'test','wire-copy','https://example.org/wire-copy','https://example.org/wire-copy','Dagblad De Polder','Titel wire-copy','','2026-03-13T09:00:00+01:00','','["nieuws"]','nl','Tekst van wire-copy. Bewoners denken mee.',NULL,'hash-wire-copy','test',NULL,'2026-12-01T13:11:03+00:00');
CREATE TABLE duplicates (
	article_id INTEGER NOT NULL, 
	canonical_id INTEGER NOT NULL, 
	kind VARCHAR(10) NOT NULL, 
	similarity FLOAT NOT NULL, 
	PRIMARY KEY (article_id), 
	FOREIGN KEY(article_id) REFERENCES articles (id), 
	FOREIGN KEY(canonical_id) REFERENCES articles (id)
);
INSERT INTO duplicates VALUES(2,1,'near',0.8000000000000000444);
INSERT INTO duplicates VALUES(6,5,'near',0.8000000000000000444);
CREATE TABLE signatures (
	article_id INTEGER NOT NULL, 
	minhash BLOB NOT NULL, 
	PRIMARY KEY (article_id), 
	FOREIGN KEY(article_id) REFERENCES articles (id)
);
CREATE TABLE predictions (
	id INTEGER NOT NULL, 
	article_id INTEGER NOT NULL, 
	run_id INTEGER, 
	model_version VARCHAR(40) NOT NULL, 
	codebook_version VARCHAR(20) NOT NULL, 
	cocreation_score FLOAT NOT NULL, 
	rule_score FLOAT NOT NULL, 
	flagged INTEGER NOT NULL, 
	sector VARCHAR(30), 
	sector_scores TEXT NOT NULL, 
	type VARCHAR(30), 
	type_scores TEXT NOT NULL, 
	evidence TEXT NOT NULL, 
	created_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_predictions_article_model UNIQUE (article_id, model_version), 
	FOREIGN KEY(article_id) REFERENCES articles (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO predictions VALUES(1,1,NULL,'m1','1',0.4000000000000000222,0.4000000000000000222,0,'overheid','{"overheid": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
INSERT INTO predictions VALUES(2,2,NULL,'m1','1',0.9000000000000000222,0.9000000000000000222,1,'overheid','{"overheid": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
INSERT INTO predictions VALUES(3,3,NULL,'m1','1',0.69999999999999995559,0.69999999999999995559,1,'zorg','{"zorg": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
INSERT INTO predictions VALUES(4,4,NULL,'m1','1',0.10000000000000000555,0.10000000000000000555,0,'overheid','{"overheid": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
INSERT INTO predictions VALUES(5,6,NULL,'m1','1',0.8000000000000000444,0.8000000000000000444,1,'welzijn','{"welzijn": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
INSERT INTO predictions VALUES(6,3,NULL,'m2','1',0.29999999999999998889,0.29999999999999998889,0,'zorg','{"zorg": 0.9}','ontwerp','{"ontwerp": 0.8}','[{"text": "Bewoners", "start": 0, "end": 8, "label": "participant:bewoners", "weight": 1.0}]','2026-12-01T13:11:03+00:00');
CREATE TABLE reviews (
	id INTEGER NOT NULL, 
	article_id INTEGER NOT NULL, 
	analyst VARCHAR(100) NOT NULL, 
	action VARCHAR(20) NOT NULL, 
	cocreation INTEGER, 
	sector VARCHAR(30), 
	type VARCHAR(30), 
	borderline INTEGER NOT NULL, 
	note TEXT NOT NULL, 
	previous TEXT NOT NULL, 
	undoes_id INTEGER, 
	model_version VARCHAR(40), 
	codebook_version VARCHAR(20) NOT NULL, 
	created_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(article_id) REFERENCES articles (id), 
	FOREIGN KEY(undoes_id) REFERENCES reviews (id)
);
INSERT INTO reviews VALUES(1,1,'ann','decide',1,'overheid','ontwerp',0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(2,1,'bea','decide',1,'overheid','ontwerp',0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(3,5,'ann','decide',1,'overheid','ontwerp',0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(4,5,'bea','decide',0,NULL,NULL,0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(5,3,'ann','decide',0,NULL,NULL,0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(6,3,'bea','decide',1,'overheid','ontwerp',0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(7,3,'lea','settle',1,'zorg','beleid',0,'','{"ann": {"event_id": 5, "cocreation": 0, "sector": null, "type": null, "borderline": 0, "note": ""}, "bea": {"event_id": 6, "cocreation": 1, "sector": "overheid", "type": "ontwerp", "borderline": 0, "note": ""}}',NULL,'m2','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(8,4,'ann','decide',0,NULL,NULL,0,'','{}',NULL,'m1','1','2026-12-01T13:11:03+00:00');
INSERT INTO reviews VALUES(9,4,'ann','undo',NULL,NULL,NULL,0,'','{"event_id": 8, "cocreation": 0, "sector": null, "type": null, "borderline": 0, "note": ""}',8,'m1','1','2026-12-01T13:11:03+00:00');
CREATE TABLE analysts (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	is_lead INTEGER NOT NULL, 
	created_at VARCHAR(40) NOT NULL, 
	disabled INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (token_hash)
);
CREATE TABLE scoring_failures (
	id INTEGER NOT NULL, 
	article_id INTEGER NOT NULL, 
	model_version VARCHAR(40) NOT NULL, 
	run_id INTEGER, 
	reason TEXT NOT NULL, 
	created_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_scoring_failures_article_model UNIQUE (article_id, model_version), 
	FOREIGN KEY(article_id) REFERENCES articles (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_articles_content_hash ON articles (content_hash);
CREATE INDEX ix_duplicates_canonical_id ON duplicates (canonical_id);
CREATE INDEX ix_predictions_article_id ON predictions (article_id);
CREATE INDEX ix_reviews_article_id ON reviews (article_id);
CREATE INDEX ix_reviews_analyst ON reviews (analyst);
COMMIT;
