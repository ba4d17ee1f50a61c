"""mcsf: Airflow 3 DAGs that keep a Mailchimp account and a Salesforce org in step."""
