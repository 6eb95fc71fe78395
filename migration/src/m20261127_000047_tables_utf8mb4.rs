//! Every table `utf8mb4` (docs/design.md §17): the tables created since the first ones named no
//! character set and took the server's default, which on a server set to latin1 made them latin1,
//! and a group named with a character outside latin1 was refused by MySQL (error 1366) and
//! answered as an outage. Each table of the schema whose default is not utf8mb4 is converted,
//! its text columns with it; on a server whose default is utf8mb4 (MariaDB's and MySQL's own)
//! there is none, and nothing is rebuilt.
use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, Statement},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The schema's tables whose default character set is not utf8mb4.
const NOT_UTF8MB4: &str = "SELECT TABLE_NAME FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' \
     AND TABLE_COLLATION NOT LIKE 'utf8mb4%'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let rows = db
            .query_all_raw(Statement::from_string(
                manager.get_database_backend(),
                NOT_UTF8MB4,
            ))
            .await?;
        for row in rows {
            let table: String = row.try_get_by_index(0)?;
            // A name read from the schema itself, quoted as an identifier.
            let table = table.replace('`', "``");
            crate::ddl(
                manager,
                &format!("ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4"),
            )
            .await?;
        }
        Ok(())
    }

    /// Nothing to undo: utf8mb4 holds everything the tables held before.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
